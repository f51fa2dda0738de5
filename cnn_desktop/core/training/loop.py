"""The PyTorch side of training: datasets, one epoch, evaluation, checkpoints (imports torch)."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cnn_desktop.core.imaging.files import atomic_write
from cnn_desktop.core.imaging.loading import ImageLoadError, load_image
from cnn_desktop.core.imaging.preprocess import decode_min_side, fit_image, to_tensor
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.models.torch_random import PrivateRandom
from cnn_desktop.core.tasks import CancelToken


class ImageFolderDataset(Dataset):
    """(path, label) items decoded with the app's own loader; unreadable files are skipped
    by returning a flag the collate function drops."""

    def __init__(
        self,
        items: Sequence[tuple[Path, int]],
        spec: ModelSpec,
        augment: Callable[[Image.Image], Image.Image] | None = None,
    ) -> None:
        self.items = list(items)
        self.spec = spec
        self.augment = augment
        self.min_side = decode_min_side(spec)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, int]:
        path, label = self.items[index]
        try:
            image = load_image(path, min_side=self.min_side)
        except ImageLoadError:
            return None, label
        fitted = self.augment(image) if self.augment else fit_image(image, self.spec)
        return to_tensor(fitted, self.spec), label


def collate(batch: list[tuple[np.ndarray | None, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a batch, dropping images that could not be read."""
    kept = [(x, y) for x, y in batch if x is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    inputs = torch.from_numpy(np.stack([x for x, _ in kept]))
    return inputs, torch.tensor([y for _, y in kept], dtype=torch.long)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    sample_weights: np.ndarray | None = None,
    workers: int = 0,
) -> DataLoader:
    """A seeded loader; with ``sample_weights`` a balanced sampler replaces shuffling."""
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    if sample_weights is not None:
        sampler = torch.utils.data.WeightedRandomSampler(
            torch.as_tensor(sample_weights, dtype=torch.double),
            num_samples=len(sample_weights),
            replacement=True,
            generator=generator,
        )
        shuffle = False
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        generator=generator,
        collate_fn=collate,
        num_workers=workers,
        persistent_workers=workers > 0,
    )


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up then cosine decay to 0, stepped once per batch."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class StepReport:
    """One optimisation step."""

    step: int
    loss: float
    accuracy: float
    lr: float
    images: int


def train_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss_fn: nn.Module,
    device: torch.device,
    cancel: CancelToken | None,
    scaler: Any = None,
    rng: PrivateRandom | None = None,
) -> Iterator[StepReport]:
    """Run one epoch, yielding after every step; checks ``cancel`` before each step.

    Dropout draws from ``rng`` (see :class:`PrivateRandom`) when it is given."""
    model.train()
    channels_last = device.type == "cuda"
    for step, (inputs, labels) in enumerate(loader):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if len(labels) == 0:
            continue
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with rng if rng is not None else contextlib.nullcontext():
            with torch.autocast(device.type, enabled=scaler is not None):
                logits = model(inputs)
                loss = loss_fn(logits.float(), labels)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
        scheduler.step()
        accuracy = (logits.argmax(1) == labels).float().mean().item()
        yield StepReport(step, loss.item(), accuracy, optimizer.param_groups[-1]["lr"], len(labels))


@torch.no_grad()
def evaluate_loss(
    model: nn.Module, loader: DataLoader, loss_fn: nn.Module, device: torch.device
) -> tuple[float, float]:
    """Mean loss and accuracy over a loader (eval mode)."""
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    for inputs, labels in loader:
        if len(labels) == 0:
            continue
        inputs, labels = inputs.to(device), labels.to(device)
        logits = model(inputs).float()
        loss_sum += loss_fn(logits, labels).item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        total += len(labels)
    return (loss_sum / total, correct / total) if total else (float("nan"), float("nan"))


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of a model's weights."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a resume checkpoint atomically (the previous one survives a crash)."""
    with atomic_write(path) as stream:
        torch.save(state, stream)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a resume checkpoint (tensors and plain data only: ``weights_only``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


class Throughput:
    """Images per second and time left, smoothed over the run."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.images = 0

    def add(self, images: int) -> float:
        self.images += images
        elapsed = time.monotonic() - self.started
        return self.images / elapsed if elapsed > 0 else 0.0

    def eta(self, fraction_done: float) -> float:
        elapsed = time.monotonic() - self.started
        return elapsed / fraction_done - elapsed if fraction_done > 0 else float("nan")


def freeze(model: nn.Module) -> nn.Module:
    """An independent copy for keeping the best weights."""
    return copy.deepcopy(model)
