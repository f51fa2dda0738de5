"""A real model with an unknown detector, and images it must call unknown or known: a head on
the built-in backbone trained on five handwritten digit classes (0–4, 40 images each, a fifth
of them validation), held-out digits of those classes, digits 5–9, and crops of photos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from cnn_desktop.core.models.bundle import ModelBundle
from cnn_desktop.core.training.config import TrainConfig
from cnn_desktop.core.training.run import train
from tests.datasets import photo_crops, write_digits_dataset

KNOWN = range(5)
OTHER = range(5, 10)


@dataclass(frozen=True)
class FiveDigitModel:
    """The trained model and the images to show it."""

    bundle: ModelBundle
    data: Path
    held_out: list[Path]  # digits 0–4 it never saw
    other_digits: list[Path]  # digits 5–9
    photos: list[Path]  # crops of four photos


def train_five_digit_model(folder: Path) -> FiveDigitModel:
    """Write the images under ``folder`` and train ``folder/five.cnnmodel`` (head mode)."""
    data = folder / "data"
    write_digits_dataset(data, per_class=40, classes=KNOWN, seed=0)
    # Another seed draws other digits of the same classes: keep 8 per class the model never saw.
    seen = {_pixels(p) for p in data.rglob("*.png")}
    held = write_digits_dataset(folder / "held", per_class=40, classes=KNOWN, seed=7)
    held_out = [
        p for paths in held.values() for p in [q for q in paths if _pixels(q) not in seen][:8]
    ]
    other = write_digits_dataset(folder / "other", per_class=8, classes=OTHER, seed=3)
    photos = folder / "photos"
    photos.mkdir()
    written = []
    for offset, name in enumerate(("chelsea", "coffee", "rocket", "astronaut")):
        for n, crop in enumerate(photo_crops(name, 5, 128, seed=offset)):
            path = photos / f"{name}_{n}.jpg"
            crop.save(path, quality=90)
            written.append(path)
    last = list(train(data, folder / "five", TrainConfig(mode="head", seed=0)))[-1]
    assert last.kind == "done", last.message
    return FiveDigitModel(
        bundle=last.result.bundle,
        data=data,
        held_out=held_out,
        other_digits=[p for paths in other.values() for p in paths],
        photos=written,
    )


def _pixels(path: Path) -> bytes:
    with Image.open(path) as image:
        return image.tobytes()
