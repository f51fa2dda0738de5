"""Label review against known label errors: how many of the files moved into a wrong class
``cnn-desktop review`` puts on top, and whether it names their real class.

The folder: all 1,797 handwritten digits of scikit-learn (``0`` … ``9``, 32×32 PNG) and 441
crops of each of five scikit-image photos (``astronaut``, ``cat``, ``cells``, ``coffee``,
``rocket``, 96×96 JPEG): 4,002 images, 15 classes. Then 5 % of them (200) are moved into another
class *of the same kind* (a digit into another digit's folder, a photo crop into another
photo's): a digit in a photo folder would be too easy to catch.

Figures (N = the number of files moved):

* ``precision_top_n``: share of the top-N findings (all kinds, in the order printed) whose file
  was moved. Target ≥ 0.85.
* ``recall_top_2n``: share of the moved files named by one of the top-2N findings. Target ≥ 0.95.
* ``suggested_right``: share of the moved files found there whose first finding suggests the
  class they came from. Target ≥ 0.90.

``label_findings_only`` gives the same figures for the label findings alone, and
``confident_learning_only`` for the label findings that confident learning flags (cleanlab's
``find_label_issues``, ``prune_by_noise_rate``).

Run: ``.venv/bin/python -m benchmarks.bench_review [--seed S] [--out FILE]`` (the first run
embeds the 4,002 images, about a minute on 2 cores; later ones use the embedding cache).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_report
from cnn_desktop.core.review import review_folder
from tests.datasets import write_digits_dataset, write_photo_dataset

PHOTO_CLASSES = {
    "astronaut": "astronaut",
    "cat": "chelsea",
    "cells": "immunohistochemistry",
    "coffee": "coffee",
    "rocket": "rocket",
}
PHOTOS_PER_CLASS = 441
MOVED_FRACTION = 0.05


def build_folder(folder: Path) -> dict[str, list[Path]]:
    """Write the clean dataset (once: a marker file says it is complete); class → files."""
    marker = folder / ".complete"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        write_digits_dataset(folder, per_class=200, size=32)
        write_photo_dataset(folder, per_class=PHOTOS_PER_CLASS, size=96, classes=PHOTO_CLASSES)
        marker.write_text("ok\n")
    return {
        d.name: sorted(p for p in d.iterdir() if p.is_file())
        for d in sorted(folder.iterdir())
        if d.is_dir()
    }


def move_some(source: Path, work: Path, seed: int) -> dict[Path, str]:
    """Copy the clean folder to ``work`` and move 5 % of its files into another class of the
    same kind; returns each moved file's new path → the class it really belongs to."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work, ignore=shutil.ignore_patterns(".complete"))
    files = [(p, p.parent.name) for d in sorted(work.iterdir()) for p in sorted(d.iterdir())]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(files), size=round(MOVED_FRACTION * len(files)), replace=False)
    digits = [str(d) for d in range(10)]
    photos = list(PHOTO_CLASSES)
    moved: dict[Path, str] = {}
    for index in chosen:
        path, label = files[index]
        group = digits if label in digits else photos
        target = str(rng.choice([name for name in group if name != label]))
        new_path = work / target / f"moved_{path.name}"
        path.rename(new_path)
        moved[new_path] = label
    return moved


def figures(findings: list, moved: dict[Path, str]) -> dict[str, float]:
    """The three figures for a list of findings (best first)."""
    n = len(moved)
    top_n = findings[:n]
    first: dict[Path, object] = {}
    for finding in findings[: 2 * n]:
        first.setdefault(finding.path, finding)
    found = [path for path in moved if path in first]
    right = sum(first[path].suggested == moved[path] for path in found)
    return {
        "precision_top_n": round(sum(f.path in moved for f in top_n) / n, 4),
        "recall_top_2n": round(len(found) / n, 4),
        "suggested_right": round(right / max(1, len(found)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="which files are moved")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument(
        "--folder",
        type=Path,
        default=Path(tempfile.gettempdir()) / "cnn-desktop-bench-review",
        help="where the dataset is written (kept for the next run)",
    )
    args = parser.parse_args()
    build_folder(args.folder / "clean")
    work = args.folder / f"moved-{args.seed}"
    moved = move_some(args.folder / "clean", work, args.seed)
    started = time.monotonic()
    report = review_folder(work, seed=0)
    seconds = time.monotonic() - started
    labels_only = [f for f in report.findings if f.kind == "label"]
    result = {
        "images": report.images,
        "classes": len(report.classes),
        "moved": len(moved),
        **figures(report.findings, moved),
        "label_findings_only": figures(labels_only, moved),
        "confident_learning_only": figures([f for f in labels_only if f.confident], moved),
        "findings": report.counts(),
        "review_seconds": round(seconds, 1),
        "targets": {"precision_top_n": 0.85, "recall_top_2n": 0.95, "suggested_right": 0.90},
    }
    write_report(result, args.out)


if __name__ == "__main__":
    main()
