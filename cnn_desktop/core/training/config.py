"""What a training run is asked to do and what it reports: the options and their defaults,
the events a run yields and its result, and what every mode shares (class balance,
provenance). The modes and the dispatcher import from here, never from each other."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnn_desktop.core.models.bundle import ModelBundle
from cnn_desktop.core.training.augment import parse_augmentations
from cnn_desktop.core.training.dataset import ScanReport
from cnn_desktop.core.training.splits import Split
from cnn_desktop.core.versions import NO_TORCH, torch_installed

MODES = ("head", "full", "scratch")
DEFAULTS: dict[str, dict[str, Any]] = {
    "head": {"epochs": 60, "batch_size": 64, "lr": 3e-3, "augment": (), "patience": 10},
    "full": {"epochs": 8, "batch_size": 8, "lr": 1e-3, "augment": ("flip", "crop"), "patience": 3},
    # Scratch: patience 6 stopped LeNet-5 on digits at epochs 15-20 of 30, before the cosine
    # schedule had lowered the rate; small rotations help on handwriting
    # (benchmarks/bench_scratch.py).
    "scratch": {
        "epochs": 30,
        "batch_size": 32,
        "lr": 2e-3,
        "augment": ("rotate", "crop"),
        "patience": 15,
    },
}
BACKBONE_LR_FACTOR = 0.1
LABEL_SMOOTHING = 0.1


class TrainError(ValueError):
    """Training cannot start (bad options, unusable data); the message says why."""


class TrainRunError(TrainError):
    """A run that started cannot go on (out of memory at batch size 1, the images vanished);
    the message says why and what was kept. No model is saved; one at the output is untouched."""


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how. ``None`` means the mode's default."""

    mode: str = "head"
    arch: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    val_split: float = 0.2
    img_size: int | None = None
    augment: tuple[str, ...] | None = None
    seed: int = 0
    device: str = "auto"
    patience: int | None = None
    balance: str = "auto"  # auto | weights | sampler | none
    resume: bool = False

    def resolved(self) -> TrainConfig:
        """The config with every default filled in.

        Raises:
            TrainError: An option is out of range.
        """
        if self.mode not in MODES:
            raise TrainError(f"unknown mode '{self.mode}' (choose from {', '.join(MODES)})")
        if self.mode != "head" and not torch_installed():
            raise TrainError(
                f"{self.mode} training needs PyTorch, and {NO_TORCH}; head mode works without it"
            )
        if not 0 < self.val_split < 1:
            raise TrainError("the validation split must be between 0 and 1")
        if self.balance not in ("auto", "weights", "sampler", "none"):
            raise TrainError("balance must be auto, weights, sampler or none")
        defaults = DEFAULTS[self.mode]
        values = {
            k: getattr(self, k) if getattr(self, k) is not None else v for k, v in defaults.items()
        }
        values["augment"] = parse_augmentations(values["augment"])
        if self.mode == "full" and self.batch_size is None and _cuda_wanted(self.device):
            # On the CPU one EfficientNet step on 8 images takes under a second, so Cancel
            # is honoured within a second; a GPU gets a larger batch.
            values["batch_size"] = 32
        for key in ("epochs", "batch_size"):
            if values[key] < 1:
                raise TrainError(f"{key.replace('_', ' ')} must be at least 1")
        if not math.isfinite(values["lr"]) or values["lr"] <= 0:
            raise TrainError(f"the learning rate must be a positive number, not {values['lr']}")
        if not 0 <= self.seed < 2**32:
            raise TrainError(
                f"the seed must be a whole number from 0 to 4294967295, not {self.seed}"
            )
        arch = self.arch
        if self.mode == "scratch":
            from cnn_desktop.core.models.zoo import SCRATCH_ARCHITECTURES

            arch = arch or "resnet18"
            if arch not in SCRATCH_ARCHITECTURES:
                raise TrainError(
                    f"unknown architecture '{arch}' for scratch training "
                    f"(choose from {', '.join(SCRATCH_ARCHITECTURES)})"
                )
        elif arch not in (None, "tf_efficientnet_lite0"):
            raise TrainError(f"{self.mode} mode fine-tunes the built-in EfficientNet-Lite0")
        return dataclasses.replace(self, arch=arch or "tf_efficientnet_lite0", **values)


def _cuda_wanted(device: str) -> bool:
    if device == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


@dataclass
class TrainEvent:
    """Something happened during training.

    ``kind`` is one of: ``scan`` (data report ready), ``embed`` (head mode: embedding
    progress), ``step``, ``epoch`` (end of an epoch, with validation figures), ``checkpoint``,
    ``export`` (saving and verifying the ONNX model), ``notice`` (the run goes on, but the user
    must know: a halved batch after running out of memory, a cache that cannot be written),
    ``done`` or ``cancelled`` (with ``result``).
    """

    kind: str
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    loss: float = math.nan
    accuracy: float = math.nan
    val_loss: float = math.nan
    val_accuracy: float = math.nan
    lr: float = math.nan
    images_per_s: float = math.nan
    eta_s: float = math.nan
    fraction: float = 0.0
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    result: TrainResult | None = None


@dataclass
class TrainResult:
    """The saved model and what was measured.

    Attributes:
        bundle: The run's model, wherever it was saved.
        history: One record per epoch.
        metrics: ``training``, ``export_check``, ``evaluation`` … as in ``metrics.json``.
        cancelled: The run was stopped before it finished (``bundle`` is its best epoch).
        target: The bundle path asked for (``--out``).
        replaced: A previous model at ``target`` was replaced by this one.
        kept_because: Non-empty when a previous model at ``target`` was kept and this run's
            model saved beside it instead; says why ("the run was cancelled" …).
    """

    bundle: ModelBundle
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    cancelled: bool = False
    target: Path | None = None
    replaced: bool = False
    kept_because: str = ""

    @property
    def world_size(self) -> int:
        """How many processes trained the model together (``torchrun``; 1 for one process)."""
        return int(self.metrics.get("world_size", 1))

    @property
    def export_verified(self) -> bool:
        """The ONNX export check passed (the saved model behaves like the trained one)."""
        return bool((self.metrics.get("export_check") or {}).get("passed"))

    def placement(self) -> str:
        """Where the model was saved and what became of a previous one, as a sentence."""
        if self.replaced:
            return f"Replaced the previous model at {self.target}"
        if self.kept_because:
            return (
                f"Kept the previous model at {self.target}; the new one is at "
                f"{self.bundle.path} because {self.kept_because}"
            )
        return f"Saved {self.bundle.path}"


def class_balance(report: ScanReport, split: Split, config: TrainConfig) -> str:
    """How imbalance is handled: ``weights``, ``sampler`` or ``none``."""
    if config.balance != "auto":
        return config.balance
    counts = np.bincount([label for _, label in split.train], minlength=len(report.classes))
    present = counts[counts > 0]
    return "weights" if len(present) and present.max() > 3 * present.min() else "none"


def training_provenance(report: ScanReport, config: TrainConfig) -> dict[str, Any]:
    """What a bundle records about how it was trained."""
    from cnn_desktop import __version__

    return {
        "source": "trained with cnn-desktop",
        "cnn_desktop": __version__,
        "mode": config.mode,
        "architecture": config.arch,
        "data": str(report.root),
        "images": report.total,
        "seed": config.seed,
        "val_split": config.val_split,
        "epochs": config.epochs,
        "augment": list(config.augment or ()),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
