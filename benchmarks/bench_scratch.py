"""Scratch mode's defaults on real handwriting: LeNet-5 on about 3,000 28×28 digits.

The data: all 1,797 of scikit-learn's handwritten digits (8×8, upscaled to 28 px) and a
rotated (±12°), shifted (±1 px) copy of each, 3,594 images written as ``train/`` (60 %),
``val/`` (20 %, early stopping and model choice) and ``test/`` (20 %, held out: the figures
come from it), stratified and seeded; both copies of a digit are always in the same split, so
no held-out digit was seen in training (nor in validation).

Two layouts: ``split`` trains on ``train/`` and stops early on ``val/``; ``flat`` puts
``train/`` and ``val/`` together as one folder of class folders (2,874 images, as a user
would have them) and lets the app draw its own 20 % validation split, so copies of one digit
can straddle training and validation, as near-duplicates in real folders do (``test/`` stays
held out).

Each layout and split seed is trained twice (``--mode scratch --arch lenet5``), with the old
defaults (given explicitly, :data:`OLD_DEFAULTS`) and with today's (nothing given), and the
saved model is evaluated on ``test/`` with and without test-time augmentation.
Target: ≥ 98 % held-out accuracy with the defaults.

Run: ``nice -n 10 .venv/bin/python -m benchmarks.bench_scratch [--out FILE] [--seeds 0 1]
[--layouts split flat]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_calibration import digit_images, write_split
from benchmarks.common import write_report

TARGET_ACCURACY = 0.98
OLD_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 32,
    "lr": 2e-3,
    "augment": ("crop",),
    "patience": 6,
}
"""Scratch mode's defaults before issue 11 (they stopped LeNet-5 early, around epoch 18)."""


def train_and_measure(
    data: Path, held_out: Path, out: Path, seed: int, options: dict[str, Any]
) -> dict:
    """Train LeNet-5 from scratch on ``data`` with ``options`` (others: the defaults), then
    score the saved model on ``held_out``, with and without test-time augmentation."""
    from cnn_desktop.core.inference import open_classifier
    from cnn_desktop.core.training import TrainConfig, evaluate_folder, train

    config = TrainConfig(mode="scratch", arch="lenet5", seed=seed, **options)
    started = time.perf_counter()
    last = list(train(data, out, config))[-1]
    seconds = time.perf_counter() - started
    if last.kind != "done" or last.result is None:
        raise RuntimeError(last.message)
    result = last.result
    training = result.metrics["training"]
    classifier = open_classifier(result.bundle, "onnx", "cpu")
    scores = evaluate_folder(classifier, held_out, tta=True)
    assert scores.tta is not None
    resolved = config.resolved()
    return {
        "seed": seed,
        "options": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in (
                ("epochs", resolved.epochs),
                ("batch_size", resolved.batch_size),
                ("lr", resolved.lr),
                ("augment", resolved.augment),
                ("patience", resolved.patience),
            )
        },
        "held_out_images": scores.count,
        "held_out_accuracy": scores.tta["accuracy_without_tta"],
        "held_out_accuracy_with_tta": scores.tta["accuracy"],
        "best_val_accuracy": round(training["best_val_accuracy"], 4),
        "epochs_run": training["epochs_run"],
        "best_epoch": 1
        + max(range(len(result.history)), key=lambda i: result.history[i]["val_accuracy"]),
        "seconds": round(seconds, 1),
    }


def summary(runs: list[dict]) -> dict:
    """Mean held-out accuracy, epochs and wall time of a set of runs."""
    count = len(runs)
    return {
        "mean_held_out_accuracy": round(sum(r["held_out_accuracy"] for r in runs) / count, 4),
        "min_held_out_accuracy": min(r["held_out_accuracy"] for r in runs),
        "mean_epochs_run": round(sum(r["epochs_run"] for r in runs) / count, 1),
        "mean_seconds": round(sum(r["seconds"] for r in runs) / count, 1),
        "met": all(r["held_out_accuracy"] >= TARGET_ACCURACY for r in runs),
    }


def flat_copy(data: Path, folder: Path) -> Path:
    """``data/train`` and ``data/val`` merged into ``folder/<class>/`` (a flat layout)."""
    for part in ("train", "val"):
        for class_folder in sorted((data / part).iterdir()):
            shutil.copytree(class_folder, folder / class_folder.name, dirs_exist_ok=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    report: dict = {"target": {"held_out_accuracy_at_least": TARGET_ACCURACY}}
    parser.add_argument(
        "--layouts", nargs="+", choices=("split", "flat"), default=["split", "flat"]
    )
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scratch-") as work:
        for seed in args.seeds:
            data = Path(work) / f"digits-{seed}"
            report["images"] = write_split(data, lambda: digit_images(2), seed)
            for layout in args.layouts:
                folder = data if layout == "split" else flat_copy(data, Path(work) / f"flat-{seed}")
                for name, options in (("old_defaults", OLD_DEFAULTS), ("new_defaults", {})):
                    out = Path(work) / f"{layout}-{name}-{seed}"
                    run = train_and_measure(folder, data / "test", out, seed, options)
                    runs.setdefault(f"{layout}/{name}", []).append(run)
                    print(layout, name, run, flush=True)
    report["results"] = {
        name: {"summary": summary(done), "runs": done} for name, done in runs.items()
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
