"""Calibration of head-mode models on held-out images: ECE before and after temperature
scaling, and accuracy (which temperature scaling must not change).

Datasets, each written as ``train/`` (60 %), ``val/`` (20 %, where T is fitted) and ``test/``
(20 %, held out, where the figures come from), stratified and seeded:

1. ``digits``: all 1,797 of scikit-learn's handwritten digits (8×8, upscaled to 28 px).
2. ``digits-x2``: the same digits twice, the second copy rotated by up to ±12° and shifted by
   a pixel (3,594 images; both copies of a digit are always in the same split, so no test
   digit was seen in training).
3. ``photos``: 10 classes of crops (25–60 % of the side) of scikit-image photos, 120 per
   class, 320×240 JPEG (easy: any crop shows which photo it is).
4. ``photo-patches``: the same photos as small patches (6–14 % of the side, 64×64 JPEG), 150
   per class: harder (brick, grass, coins and the camera's background look alike up close).

Each dataset is trained with the head-mode defaults for several split seeds (the embedding
cache makes every run after the first cheap).

Run: ``.venv/bin/python -m benchmarks.bench_calibration [--out FILE] [--seeds 0 1 2]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.bench_train import PHOTOS as PHOTO_CLASSES
from benchmarks.common import write_report

TARGET_ECE = 0.03


def _part(position: int, count: int) -> str:
    return "train" if position < 0.6 * count else "val" if position < 0.8 * count else "test"


def digit_images(copies: int) -> Iterator[tuple[str, int, list[Image.Image]]]:
    """``(class, source index, images)`` for every scikit-learn digit; ``copies`` = 2 adds a
    rotated, shifted copy of each."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(1234)
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        image = Image.fromarray((pixels * (255 / 16)).round().astype(np.uint8), "L")
        image = image.resize((28, 28), Image.Resampling.BILINEAR)
        images = [image]
        if copies > 1:
            dx, dy = (int(v) for v in rng.integers(-1, 2, 2))
            turned = image.rotate(float(rng.uniform(-12, 12)), Image.Resampling.BILINEAR)
            images.append(
                turned.transform(image.size, Image.Transform.AFFINE, (1, 0, dx, 0, 1, dy))
            )
        yield str(int(target)), index, images


def photo_images(
    per_class: int, sides: tuple[float, float] = (0.25, 0.6), size: tuple[int, int] = (320, 240)
) -> Iterator[tuple[str, int, list[Image.Image]]]:
    """``(class, n, [crop])``: random crops of each scikit-image photo, each side a fraction
    in ``sides`` of the photo's, resized to ``size``."""
    from skimage import data

    rng = np.random.default_rng(0)
    for name in PHOTO_CLASSES:
        photo = Image.fromarray(getattr(data, name)()).convert("RGB")
        w, h = photo.size
        for n in range(per_class):
            side = float(rng.uniform(*sides))
            cw, ch = int(w * side), int(h * side)
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            crop = photo.crop((left, top, left + cw, top + ch)).resize(size)
            if n % 2:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            yield name, n, [crop]


def write_split(
    folder: Path, source: Callable[[], Iterator[tuple[str, int, list[Image.Image]]]], seed: int
) -> dict[str, int]:
    """Write ``source``'s images into train/val/test class folders, the split drawn per class
    with ``seed`` (all images of one source item go to the same split)."""
    shutil.rmtree(folder, ignore_errors=True)
    by_class: dict[str, list[tuple[int, list[Image.Image]]]] = {}
    for name, index, images in source():
        by_class.setdefault(name, []).append((index, images))
    rng = np.random.default_rng(seed)
    counts = {"train": 0, "val": 0, "test": 0}
    for name, items in by_class.items():
        order = rng.permutation(len(items))
        for position, item in enumerate(order):
            part = _part(position, len(items))
            target = folder / part / name
            target.mkdir(parents=True, exist_ok=True)
            index, images = items[item]
            for copy, image in enumerate(images):
                suffix = "png" if image.mode == "L" else "jpg"
                image.save(target / f"{name}_{index:04d}_{copy}.{suffix}")
                counts[part] += 1
    return counts


def mean_confidence(bins: list[dict]) -> float:
    """The mean top-1 confidence of the images counted in reliability bins."""
    total = sum(b["count"] for b in bins)
    return sum(b["count"] * b["confidence"] for b in bins if b["count"]) / max(1, total)


def train_and_measure(data: Path, out: Path, seed: int) -> dict:
    from cnn_desktop.core.training import TrainConfig, train

    started = time.perf_counter()
    last = list(train(data, out, TrainConfig(mode="head", seed=seed)))[-1]
    if last.kind != "done":
        raise RuntimeError(last.message)
    metrics = json.loads((last.result.bundle.path / "metrics.json").read_text())
    block, test = metrics["calibration"], metrics["calibration"]["test"]
    return {
        "seed": seed,
        "temperature": block["temperature"],
        "val_ece_before": block["ece_before"],
        "val_ece_after": block["ece_after"],
        "test_images": test["images"],
        "test_accuracy": test["accuracy"],
        "test_accuracy_of_saved_model": metrics["evaluation"]["accuracy"],
        "test_mean_confidence_before": round(mean_confidence(test["bins_before"]), 4),
        "test_mean_confidence_after": round(mean_confidence(test["bins_after"]), 4),
        "test_ece_before": test["ece_before"],
        "test_ece_after": test["ece_after"],
        "export_check_passed": metrics["export_check"]["passed"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sources = {
        "digits": lambda: digit_images(1),
        "digits-x2": lambda: digit_images(2),
        "photos": lambda: photo_images(120),
        "photo-patches": lambda: photo_images(150, (0.06, 0.14), (64, 64)),
    }
    parser.add_argument("--datasets", nargs="+", choices=list(sources), default=list(sources))
    args = parser.parse_args()
    sources = {name: sources[name] for name in args.datasets}
    report: dict = {"target": {"test_ece_after_at_most": TARGET_ECE}, "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="bench-calibration-") as work:
        for name, source in sources.items():
            runs = []
            for seed in args.seeds:
                data = Path(work) / name
                counts = write_split(data, source, seed)
                runs.append(train_and_measure(data, Path(work) / f"{name}-{seed}", seed))
                print(name, counts, json.dumps(runs[-1]), flush=True)
            report["datasets"][name] = {
                "images": counts,
                "runs": runs,
                "met": all(run["test_ece_after"] <= TARGET_ECE for run in runs),
            }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
