"""Watch the loss functions a training run builds: their class weights and the labels they see.

Training creates ``torch.nn.CrossEntropyLoss`` objects for the training loss (with label
smoothing) and for validation (without). :func:`record_losses` replaces the class for the
duration of a test so each one created is kept, with every target batch passed to it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch


class RecordingLoss(torch.nn.CrossEntropyLoss):
    """A cross-entropy loss that remembers the targets of every call."""

    created: ClassVar[list[RecordingLoss]] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.targets: list[np.ndarray] = []
        RecordingLoss.created.append(self)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.targets.append(target.detach().cpu().numpy().copy())
        return super().forward(logits, target)

    @property
    def is_training_loss(self) -> bool:
        """The training loss is the one with label smoothing."""
        return self.label_smoothing > 0

    def class_weights(self) -> np.ndarray | None:
        """The per-class weights given to the loss, if any."""
        return None if self.weight is None else self.weight.detach().cpu().numpy()

    def label_counts(self, num_classes: int) -> np.ndarray:
        """How often each class was seen, over every call."""
        labels = np.concatenate(self.targets) if self.targets else np.zeros(0, np.int64)
        return np.bincount(labels, minlength=num_classes)


def record_losses(monkeypatch: pytest.MonkeyPatch) -> list[RecordingLoss]:
    """Make every ``CrossEntropyLoss`` built from now on a :class:`RecordingLoss`.

    Returns:
        The list the losses are appended to as they are created (empty at first).
    """
    created: ClassVar[list[RecordingLoss]] = []
    monkeypatch.setattr(RecordingLoss, "created", created)
    monkeypatch.setattr(torch.nn, "CrossEntropyLoss", RecordingLoss)
    return created


def training_loss(created: list[RecordingLoss]) -> RecordingLoss:
    """The one training loss among those recorded."""
    losses = [loss for loss in created if loss.is_training_loss]
    assert len(losses) == 1, f"expected one training loss, got {len(losses)}"
    return losses[0]
