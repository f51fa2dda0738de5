"""A small real model to export: a head on the built-in backbone, trained on handwritten digits
written as class folders (three digits, 30 images each, 6 of them per class validation)."""

from __future__ import annotations

from pathlib import Path

from cnn_desktop.core.models.bundle import ModelBundle
from cnn_desktop.core.training.config import TrainConfig
from cnn_desktop.core.training.run import train
from tests.datasets import write_digits_dataset


def train_digits_head(
    folder: Path, per_class: int = 30, epochs: int = 20
) -> tuple[Path, ModelBundle]:
    """Write the digits into ``folder/data`` and train ``folder/digits.cnnmodel`` on them."""
    data = folder / "data"
    write_digits_dataset(data, per_class=per_class, classes=range(3))
    last = list(train(data, folder / "digits", TrainConfig(epochs=epochs)))[-1]
    assert last.kind == "done", last.message
    return data, last.result.bundle
