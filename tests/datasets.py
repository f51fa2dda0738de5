"""Real image datasets written as class folders, shared by the dataset, training and CLI tests.

* :func:`write_digits_dataset`: scikit-learn's handwritten digits (8×8, upscaled) as grayscale
  PNG files in folders ``0`` … ``9``. The 1,797 digits are all distinct, so a dataset written
  from them has no duplicate images.
* :func:`write_photo_dataset`: random crops of scikit-image photos (the cat ``chelsea``, the
  ``coffee`` cup, the ``rocket``) as JPEG files, one folder per class.
* :func:`write_junk`: the files a real folder collects (notes, empty and truncated images,
  hidden files and folders, a file in the wrong place), with the reason a scan must give.

Everything is seeded: the same arguments write the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

PHOTO_CLASSES: dict[str, str] = {"cat": "chelsea", "coffee": "coffee", "rocket": "rocket"}
"""Default folder name → scikit-image photo for :func:`write_photo_dataset`."""


def write_digits_dataset(
    folder: Path,
    per_class: int = 30,
    classes: Iterable[int] = range(10),
    size: int = 28,
    seed: int = 0,
) -> dict[str, list[Path]]:
    """Write handwritten digits as ``folder/<digit>/<digit>_<n>.png`` (grayscale).

    Args:
        folder: The dataset folder (created if needed).
        per_class: Images per digit (at most about 170).
        classes: The digits to write.
        size: Side of each image in pixels (the 8×8 originals are upscaled bilinearly).
        seed: Which digits are picked.

    Returns:
        Class name → the files written, in order.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    written: dict[str, list[Path]] = {}
    for digit in classes:
        pool = np.flatnonzero(digits.target == digit)
        chosen = rng.choice(pool, size=min(per_class, pool.size), replace=False)
        class_folder = folder / str(digit)
        class_folder.mkdir(parents=True, exist_ok=True)
        written[str(digit)] = []
        for n, index in enumerate(chosen):
            pixels = (digits.images[index] * (255.0 / 16.0)).round().astype(np.uint8)
            image = Image.fromarray(pixels, "L").resize((size, size), Image.Resampling.BILINEAR)
            path = class_folder / f"{digit}_{n:03d}.png"
            image.save(path)
            written[str(digit)].append(path)
    return written


def photo_crops(photo: str, count: int, size: int, seed: int = 0) -> list[Image.Image]:
    """Random square crops of a scikit-image photo, flipped and brightened at random.

    Args:
        photo: A ``skimage.data`` function name, e.g. ``"chelsea"``.
        count: How many crops.
        size: Side of each crop after resizing.
        seed: Seed of the random crops.
    """
    from skimage import data

    source = Image.fromarray(getattr(data, photo)()).convert("RGB")
    width, height = source.size
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        side = int(min(width, height) * rng.uniform(0.7, 0.95))
        left = int(rng.integers(0, width - side + 1))
        top = int(rng.integers(0, height - side + 1))
        crop = source.crop((left, top, left + side, top + side))
        crop = crop.resize((size, size), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crops.append(ImageEnhance.Brightness(crop).enhance(float(rng.uniform(0.85, 1.15))))
    return crops


def write_photo_dataset(
    folder: Path,
    per_class: int = 12,
    size: int = 96,
    classes: Mapping[str, str] | None = None,
    seed: int = 0,
) -> dict[str, list[Path]]:
    """Write crops of real photos as ``folder/<class>/<class>_<n>.jpg``.

    Args:
        folder: The dataset folder (created if needed).
        per_class: Images per class.
        size: Side of each image in pixels.
        classes: Folder name → ``skimage.data`` photo (default :data:`PHOTO_CLASSES`).
        seed: Seed of the random crops.

    Returns:
        Class name → the files written, in order.
    """
    written: dict[str, list[Path]] = {}
    for offset, (name, photo) in enumerate((classes or PHOTO_CLASSES).items()):
        class_folder = folder / name
        class_folder.mkdir(parents=True, exist_ok=True)
        written[name] = []
        for n, crop in enumerate(photo_crops(photo, per_class, size, seed + 1000 * offset)):
            path = class_folder / f"{name}_{n:03d}.jpg"
            crop.save(path, quality=90)
            written[name].append(path)
    return written


def write_junk(folder: Path, class_name: str = "0") -> dict[Path, str]:
    """Add the junk a real dataset folder collects; every file is one a scan must skip.

    Args:
        folder: The dataset folder (its class folder ``class_name`` is created if needed).
        class_name: The class folder that receives most of the junk.

    Returns:
        Each junk path → the reason a scan must give for skipping it (files inside a hidden
        folder are not listed: the hidden folder is reported once).
    """
    class_folder = folder / class_name
    hidden_folder = class_folder / ".thumbnails"
    hidden_class = folder / ".cache"
    for target in (hidden_folder, hidden_class):
        target.mkdir(parents=True, exist_ok=True)
        for n in range(2):
            _tiny_png(n).save(target / f"thumb_{n}.png")
    notes = class_folder / "notes.txt"
    notes.write_text("where these images came from\n", encoding="utf-8")
    figure = class_folder / "figure.eps"
    figure.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
    empty = class_folder / "empty.jpg"
    empty.write_bytes(b"")
    hidden_file = class_folder / ".hidden.png"
    _tiny_png(7).save(hidden_file)
    truncated = class_folder / "truncated.jpg"
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buffer, "JPEG", quality=95
    )
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    loose = folder / "stray.png"
    _tiny_png(9).save(loose)
    return {
        notes: "not an image type (.txt)",
        figure: "EPS needs an external interpreter (Ghostscript)",
        empty: "unreadable: file is empty",
        hidden_file: "hidden file",
        hidden_folder: "hidden folder",
        hidden_class: "hidden folder",
        truncated: "unreadable: image is truncated or corrupt",
        loose: "not inside a class folder",
    }


def _tiny_png(shade: int) -> Image.Image:
    """A small distinct image (each ``shade`` gives different bytes)."""
    return Image.new("RGB", (40, 40), (shade * 20 % 256, 100, 200))
