"""INT8 export accuracy: head models fine-tuned on real images, exported with ``export --int8``,
against their fp32 originals on held-out images neither training nor calibration has seen.

Two models, trained (or reused from ``--work``) with the default ``train`` (head mode):

* ``digits``: 1,500 of scikit-learn's handwritten digits (150 per class); the other 297 are the
  test set.
* ``photos``: crops of five scikit-image photos (60 per class); 30 other crops per class, from
  another seed, are the test set.

Each is exported with :func:`cnn_desktop.core.export.export_model` (its accuracy budget
included); the report gives the recipe chosen, the export's own parity report, and fp32 vs
INT8 on the test set: accuracy, agreement, and the speed ratio (batch of 8, one thread).
``--sweep`` instead quantizes each model with every named recipe of
:data:`cnn_desktop.core.export.quantize.RECIPES` on the export's calibration images, and
measures each on the export's held-out images plus the test set.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_int8.py [--out FILE] [--work DIR]
[--models digits,photos] [--sweep [NAME,...]]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import write_report
from cnn_desktop.core.export import export_model
from cnn_desktop.core.export.images import export_images
from cnn_desktop.core.export.parity import parity_report
from cnn_desktop.core.export.quantize import RECIPES, quantize_graph
from cnn_desktop.core.imaging import load_and_preprocess
from cnn_desktop.core.models import ModelBundle, load_bundle
from cnn_desktop.core.training.config import TrainConfig
from cnn_desktop.core.training.run import train
from tests.datasets import write_digits_dataset, write_photo_dataset

DIGITS_PER_CLASS = 150
PHOTO_CLASSES = {
    "cat": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
    "astronaut": "astronaut",
    "tissue": "immunohistochemistry",
}


def digits_data(work: Path) -> tuple[Path, Path]:
    """All 1,797 digits: the first 150 of each class to train on, the rest to test with."""
    train_dir, test_dir = work / "digits" / "train", work / "digits" / "test"
    if not train_dir.is_dir():
        staging = work / "digits" / "all"
        written = write_digits_dataset(staging, per_class=1000)
        for digit, paths in written.items():
            for number, path in enumerate(paths):
                target = train_dir if number < DIGITS_PER_CLASS else test_dir
                (target / digit).mkdir(parents=True, exist_ok=True)
                path.rename(target / digit / path.name)
        shutil.rmtree(staging)
    return train_dir, test_dir


def photos_data(work: Path) -> tuple[Path, Path]:
    """Crops of five photos: 60 per class to train on, 30 others (another seed) to test with."""
    train_dir, test_dir = work / "photos" / "train", work / "photos" / "test"
    if not train_dir.is_dir():
        write_photo_dataset(train_dir, per_class=60, classes=PHOTO_CLASSES, seed=0)
        write_photo_dataset(test_dir, per_class=30, classes=PHOTO_CLASSES, seed=7)
    return train_dir, test_dir


def trained(data: Path, out: Path) -> ModelBundle:
    """The default head model trained on ``data`` (reused when ``out`` already holds it)."""
    if out.is_dir():
        return load_bundle(out)
    last = list(train(data, out, TrainConfig()))[-1]
    if last.kind != "done":
        raise SystemExit(f"training on {data} failed: {last.message}")
    return last.result.bundle


def test_set(folder: Path, bundle: ModelBundle) -> tuple[np.ndarray, np.ndarray]:
    """The test images preprocessed for ``bundle`` and their class indices."""
    index = {name: i for i, name in enumerate(bundle.spec.class_names)}
    paths = sorted(p for p in folder.glob("*/*") if p.is_file())
    images = np.stack([load_and_preprocess(p, bundle.spec) for p in paths])
    return images, np.array([index[p.parent.name] for p in paths])


def measure_export(bundle: ModelBundle, test: tuple[np.ndarray, np.ndarray], work: Path) -> dict:
    """Export ``bundle`` to INT8 as ``export --int8`` does, then compare both on the test set."""
    exported = export_model(bundle, work / f"{bundle.path.stem}-int8", int8=True, force=True)
    images, labels = test
    on_test = parity_report(
        str(bundle.onnx_path), exported.bundle.onnx_path.read_bytes(), bundle.spec, images, labels
    )
    return {"export_report": exported.report, "test_set": on_test}


def sweep(bundle: ModelBundle, test: tuple[np.ndarray, np.ndarray], names: list[str]) -> list:
    """Each recipe on the export's calibration images, measured on held-out + test images."""
    images = export_images(bundle.spec, None)
    held_out = np.concatenate([images.held_out, test[0]])
    labels = np.concatenate([images.held_out_labels, test[1]])
    rows = []
    for name in names:
        proto = quantize_graph(
            bundle.onnx_path, images.calibration, bundle.spec.input_name, RECIPES[name]
        )
        report = parity_report(
            str(bundle.onnx_path), proto.SerializeToString(), bundle.spec, held_out, labels
        )
        rows.append(
            {
                "recipe": name,
                "images": report["images"],
                "float_accuracy": report["float_accuracy"],
                "int8_accuracy": report["int8_accuracy"],
                "accuracy_change_points": report["accuracy_change_points"],
                "top1_agreement": report["top1_agreement"],
                "int8_speedup": report["speed"]["int8_speedup"],
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "cnn-desktop-bench-int8"
    )
    parser.add_argument("--models", default="digits,photos")
    parser.add_argument(
        "--sweep", nargs="?", const=",".join(RECIPES), help="recipes to compare (default: all)"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name in args.models.split(","):
        train_dir, test_dir = {"digits": digits_data, "photos": photos_data}[name](args.work)
        bundle = trained(train_dir, args.work / f"{name}.cnnmodel")
        test = test_set(test_dir, bundle)
        if args.sweep:
            results[name] = {"sweep": sweep(bundle, test, args.sweep.split(","))}
        else:
            results[name] = measure_export(bundle, test, args.work)
    write_report(
        {
            "benchmark": "int8",
            "target": "INT8 loses <= 0.5 points of held-out accuracy",
            "results": results,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
