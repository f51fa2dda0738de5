"""The end of a full or scratch run, on one process (rank 0 under ``torchrun``): calibrate on
the validation logits, fit the unknown detector on the embeddings, export to ONNX and hand
over to :func:`cnn_desktop.core.training.output.finish` (imports torch)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnn_desktop.core.models.export import export_onnx
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.models.unknown import embedding_width
from cnn_desktop.core.models.zoo import visualisable_layers
from cnn_desktop.core.training.calibration import calibrate, softmax
from cnn_desktop.core.training.config import TrainConfig, TrainEvent
from cnn_desktop.core.training.dataset import ScanReport
from cnn_desktop.core.training.loop import (
    ImageFolderDataset,
    MicroBatch,
    make_loader,
    validation_logits,
)
from cnn_desktop.core.training.output import finish
from cnn_desktop.core.training.splits import Split
from cnn_desktop.core.training.unknown import fit_unknown_detector


def export_trained(
    model: nn.Module,
    spec: ModelSpec,
    report: ScanReport,
    split: Split,
    out: Path,
    config: TrainConfig,
    history: list[dict[str, float]],
    *,
    device: torch.device,
    micro: MicroBatch,
    cancelled: bool,
    training: dict[str, Any],
    world_size: int = 1,
) -> Iterator[TrainEvent]:
    """Calibrate, fit the unknown detector, export and save ``model`` (its best weights
    loaded, on ``device``); yields the export events and the final ``done``/``cancelled``."""
    # Calibrate on the validation logits; the export divides the logits by T before its softmax.
    yield TrainEvent("export", message="Fitting the unknown detector…", fraction=0.0)
    classes = len(report.classes)
    val_loader = make_loader(
        ImageFolderDataset(split.val, spec, root=report.root),
        config.batch_size,
        shuffle=False,
        seed=config.seed,
    )
    val_features, val_logits, val_labels = _embeddings_and_logits(
        model, val_loader, device, micro, classes
    )
    calibration = calibrate(val_logits, val_labels)
    spec = dataclasses.replace(spec, temperature=calibration["temperature"])
    train_images = ImageFolderDataset(split.train, spec, root=report.root)  # not augmented
    unaugmented = make_loader(train_images, config.batch_size, shuffle=False, seed=config.seed)
    train_features, _, train_labels = _embeddings_and_logits(
        model, unaugmented, device, micro, classes
    )
    yield TrainEvent("export", message="Exporting the model to ONNX…", fraction=0.0)
    model = model.cpu().eval()
    proto, spec = export_onnx(model, spec, visualisable_layers(model))
    unknown = fit_unknown_detector(
        train_features,
        train_labels,
        softmax(val_logits, spec.temperature),
        val_features,
        config.seed,
    )
    if unknown[0] is not None and unknown[0].width != embedding_width(proto):
        reason = "the exported graph's embedding is not the last linear layer's input"
        unknown = (None, {"method": None, "reason": reason})
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}

    def reference(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = model(torch.from_numpy(batch)).float()
            return (logits / spec.temperature).softmax(-1).numpy()

    yield from finish(
        reference,
        spec,
        proto,
        weights,
        report,
        split,
        out,
        config,
        history,
        cancelled=cancelled,
        training=training,
        calibration=calibration,
        unknown=unknown,
        world_size=world_size,
    )


class _WithEmbeddings(nn.Module):
    """A classifier whose output is its logits followed by its embedding, the input of its
    last linear layer (the tensor the exported graph's final ``Gemm`` takes)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        hook = self.last.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        try:
            logits = self.model(x).float()
        finally:
            hook.remove()
        return torch.cat([logits, seen[-1].flatten(1).float()], dim=1)


def _embeddings_and_logits(
    model: nn.Module, loader: Any, device: torch.device, micro: MicroBatch, classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings ``[N, D]``, raw logits ``[N, classes]`` and labels of a loader's images,
    in one pass (out of memory halves the part sizes, as in evaluation)."""
    joined, labels = validation_logits(_WithEmbeddings(model), loader, device, micro)
    if not len(labels):
        return np.zeros((0, 0), np.float32), np.zeros((0, classes), np.float32), labels
    return joined[:, classes:], joined[:, :classes], labels
