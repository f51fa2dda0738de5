"""Helpers shared by the benchmark scripts: real test images and JSON output."""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle_left", "hubble_deep_field")


def source_photos() -> list[Image.Image]:
    """Real photos that ship with scikit-image."""
    from skimage import data

    photos = []
    for name in PHOTOS:
        loader = getattr(data, name, None)
        if loader is not None:
            photos.append(Image.fromarray(loader()).convert("RGB"))
    return photos


def write_photo_set(
    folder: Path, count: int, size: tuple[int, int], quality: int = 90
) -> list[Path]:
    """``count`` JPEG photos of ``size`` (w, h), varied crops and flips of the real photos.

    Files are reused when the folder already holds the set.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo_{i:04d}.jpg" for i in range(count)]
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(0)
    photos = source_photos()
    for i, path in enumerate(paths):
        photo = photos[i % len(photos)]
        w, h = photo.size
        crop_w, crop_h = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
        left, top = int(rng.integers(0, w - crop_w + 1)), int(rng.integers(0, h - crop_h + 1))
        image = photo.crop((left, top, left + crop_w, top + crop_h)).resize(
            size, Image.Resampling.BILINEAR
        )
        if i % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image.save(path, quality=quality)
    return paths


def throughput(count: int, run: Callable[[], Any]) -> dict[str, float]:
    """Time ``run`` once; images per second for ``count`` images."""
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    return {
        "images": count,
        "seconds": round(seconds, 3),
        "images_per_s": round(count / seconds, 2),
    }


def write_report(report: dict[str, Any], out: Path | None) -> None:
    """Print the report as JSON (and write it to ``out``)."""
    report.setdefault(
        "machine", {"python": sys.version.split()[0], "platform": platform.platform()}
    )
    text = json.dumps(report, indent=2)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
