"""The PyTorch side of training: datasets, one epoch, evaluation, checkpoints (imports torch).

Running out of memory in a step (``torch.cuda.OutOfMemoryError``, or the CPU allocator's
``RuntimeError``) does not end the run: memory is freed, the batch goes through the model in
halves whose gradients are summed (so the optimiser still steps once on the whole batch), and
that smaller part size is kept for the rest of the run, validation included. Each halving is
a notice; at one image per part a :class:`TrainRunError` says so.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
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
from cnn_desktop.core.training.config import TrainRunError
from cnn_desktop.core.training.dataset import vanished_message

OUT_OF_MEMORY_MARKERS = ("out of memory", "not enough memory", "can't allocate memory")


class ImageFolderDataset(Dataset):
    """(path, label) items decoded with the app's own loader; unreadable files are skipped
    by returning a flag the collate function drops. A file that no longer exists (the folder
    ``root`` deleted or emptied mid-training) is a :class:`TrainRunError` naming the folder."""

    def __init__(
        self,
        items: Sequence[tuple[Path, int]],
        spec: ModelSpec,
        augment: Callable[[Image.Image], Image.Image] | None = None,
        root: Path | None = None,
    ) -> None:
        self.items = list(items)
        self.spec = spec
        self.augment = augment
        self.min_side = decode_min_side(spec)
        self.root = root

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, int]:
        path, label = self.items[index]
        try:
            image = load_image(path, min_side=self.min_side)
        except ImageLoadError:
            if not os.path.lexists(path):
                raise TrainRunError(vanished_message(self.root or path.parent, path)) from None
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
    sampler: torch.utils.data.Sampler | None = None,
) -> DataLoader:
    """A seeded loader; with ``sample_weights`` a balanced sampler replaces shuffling, and a
    given ``sampler`` (a data-parallel rank's share) replaces both."""
    generator = torch.Generator().manual_seed(seed)
    if sampler is not None:
        shuffle = False
    elif sample_weights is not None:
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


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch running out of (GPU, MPS or CPU) memory."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m in text for m in OUT_OF_MEMORY_MARKERS)


@dataclass
class MicroBatch:
    """How many images of a batch go through the model at once (``size``; None: the whole
    batch), and the notices of each time it was halved, for the run to pass on."""

    size: int | None = None
    notices: list[str] = field(default_factory=list)

    def parts(self, count: int) -> list[slice]:
        """Slices splitting a batch of ``count`` images into parts of at most ``size``."""
        step = min(self.size or count, count) or 1
        return [slice(start, start + step) for start in range(0, count, step)]

    def halve(self, count: int, device: torch.device) -> None:
        """After running out of memory on a batch of ``count`` images: use parts half the
        size from now on, and free what the failed attempt held.

        Raises:
            TrainRunError: The parts already hold a single image.
        """
        current = min(self.size or count, count)
        _free_memory(device)
        if current <= 1:
            raise TrainRunError(
                f"out of memory on {device.type} even at batch size 1; use a smaller image "
                "size or architecture, close other programs using the memory, or train on "
                "the other device (--device)"
            )
        self.size = current // 2
        self.notices.append(
            f"out of memory at batch size {current}; continuing with {self.size} (gradients "
            "summed over the parts: each step still learns from the whole batch)"
        )

    def take_notices(self) -> list[str]:
        """The notices not passed on yet (and forget them)."""
        taken, self.notices = self.notices, []
        return taken


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _loss_share(loss_fn: nn.Module, part: torch.Tensor, whole: torch.Tensor) -> float:
    """The part's share of the batch's mean loss (by class weight when the loss has some)."""
    if len(part) == len(whole):
        return 1.0
    weight = getattr(loss_fn, "weight", None)
    if weight is None:
        return len(part) / len(whole)
    return float(weight[part].sum() / weight[whole].sum())


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
    micro: MicroBatch | None = None,
) -> Iterator[StepReport]:
    """Run one epoch, yielding after every step; checks ``cancel`` before each step.

    Dropout draws from ``rng`` (see :class:`PrivateRandom`) when it is given. A step that runs
    out of memory is run again in smaller parts (see :class:`MicroBatch`)."""
    model.train()
    micro = micro if micro is not None else MicroBatch()
    channels_last = device.type == "cuda"
    for step, (inputs, labels) in enumerate(loader):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if len(labels) == 0:
            continue
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        while True:
            try:
                with rng if rng is not None else contextlib.nullcontext():
                    loss, correct = _step(model, inputs, labels, optimizer, loss_fn, scaler, micro)
                break
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
            optimizer.zero_grad(set_to_none=True)  # outside ``except``: its frames are gone
            micro.halve(len(labels), device)
        scheduler.step()
        lr = optimizer.param_groups[-1]["lr"]
        yield StepReport(step, loss, correct / len(labels), lr, len(labels))


def _step(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    scaler: Any,
    micro: MicroBatch,
) -> tuple[float, int]:
    """One optimiser step on a batch, in parts of ``micro.size`` whose gradients add up to
    the whole batch's; returns the batch's loss and how many it got right."""
    optimizer.zero_grad(set_to_none=True)
    loss_sum, correct = 0.0, 0
    parts = micro.parts(len(labels))
    for number, part in enumerate(parts):
        # Under DDP only the last part's backward averages the gradients across processes:
        # each one then syncs once per step, whatever its number of parts.
        keep_local = number < len(parts) - 1 and hasattr(model, "no_sync")
        with model.no_sync() if keep_local else contextlib.nullcontext():
            with torch.autocast(inputs.device.type, enabled=scaler is not None):
                logits = model(inputs[part])
                loss = loss_fn(logits.float(), labels[part])
                share = _loss_share(loss_fn, labels[part], labels)
                if share != 1.0:
                    loss = loss * share
            (scaler.scale(loss) if scaler is not None else loss).backward()
        loss_sum += loss.item()
        correct += int((logits.argmax(1) == labels[part]).sum().item())
        del logits, loss
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss_sum, correct


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    device: torch.device,
    micro: MicroBatch | None = None,
) -> tuple[float, float]:
    """Mean loss and accuracy over a loader (eval mode), in parts of ``micro.size`` images,
    halved again when even those run out of memory."""
    loss_sum, correct, total = evaluate_sums(model, loader, loss_fn, device, micro)
    return (loss_sum / total, correct / total) if total else (float("nan"), float("nan"))


@torch.no_grad()
def evaluate_sums(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    device: torch.device,
    micro: MicroBatch | None = None,
) -> tuple[float, int, int]:
    """The summed loss, the number right and the number of readable images of a loader (eval
    mode), as :func:`evaluate_loss` measures them; sums add up across data-parallel ranks."""
    model.eval()
    micro = micro if micro is not None else MicroBatch()
    total, correct, loss_sum = 0, 0, 0.0
    for inputs, labels in loader:
        if len(labels) == 0:
            continue
        inputs, labels = inputs.to(device), labels.to(device)
        logits = _logits_in_parts(model, inputs, micro, device)
        loss_sum += loss_fn(logits, labels).item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        total += len(labels)
    return loss_sum, correct, total


@torch.no_grad()
def validation_logits(
    model: nn.Module, loader: DataLoader, device: torch.device, micro: MicroBatch | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The model's raw logits ``[N, classes]`` and the labels ``[N]`` of a loader (eval mode),
    in parts of ``micro.size`` images like :func:`evaluate_loss`."""
    model.eval()
    micro = micro if micro is not None else MicroBatch()
    logits, labels = [], []
    for inputs, targets in loader:
        if len(targets):
            part_logits = _logits_in_parts(model, inputs.to(device), micro, device)
            logits.append(part_logits.cpu().numpy())
            labels.append(targets.numpy())
    if not logits:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(logits), np.concatenate(labels)


def _logits_in_parts(
    model: nn.Module, inputs: torch.Tensor, micro: MicroBatch, device: torch.device
) -> torch.Tensor:
    """``model(inputs)`` as float, run ``micro.size`` images at a time, halving on out of memory."""
    while True:
        try:
            return torch.cat([model(inputs[part]).float() for part in micro.parts(len(inputs))])
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
        micro.halve(len(inputs), device)


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
