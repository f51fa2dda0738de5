"""Training/validation splits and class balancing for a scanned dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnn_desktop.core.training.dataset import ScanReport


@dataclass(frozen=True)
class Split:
    """Images for training, validation and (optionally) testing, as ``(path, class index)``."""

    train: list[tuple[Path, int]]
    val: list[tuple[Path, int]]
    test: list[tuple[Path, int]] = field(default_factory=list)


def make_split(report: ScanReport, val_fraction: float = 0.2, seed: int = 0) -> Split:
    """Split a scanned dataset into training and validation images.

    Stratified: about ``val_fraction`` of each class goes to validation, and a class with at
    least two images has at least one in each part. Paths are sorted before the seeded
    shuffle, so the split depends on the files and ``seed`` only, never on listing order.
    The split layout's own splits are returned unchanged (``val_fraction`` unused).

    Args:
        report: A scan from :func:`scan_folder`.
        val_fraction: Share of each class used for validation, strictly between 0 and 1.
        seed: Seed of the shuffle; the same seed gives the same split.

    Returns:
        The split; each list is sorted by (class index, path).

    Raises:
        ValueError: ``val_fraction`` is not strictly between 0 and 1.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), not {val_fraction}")
    if report.layout == "split":
        return Split(
            list(report.items.get("train", [])),
            list(report.items.get("val", [])),
            list(report.items.get("test", [])),
        )
    by_class: dict[int, list[Path]] = {}
    for path, label in (item for items in report.items.values() for item in items):
        by_class.setdefault(label, []).append(path)
    rng = np.random.default_rng(seed)
    train: list[tuple[Path, int]] = []
    val: list[tuple[Path, int]] = []
    for label in sorted(by_class):
        paths = sorted(by_class[label], key=str)
        n_val = min(max(1, round(len(paths) * val_fraction)), len(paths) - 1)
        order = rng.permutation(len(paths))
        val.extend((paths[i], label) for i in sorted(order[:n_val]))
        train.extend((paths[i], label) for i in sorted(order[n_val:]))
    return Split(train, val, [])


def class_weights(labels: Sequence[int], num_classes: int) -> np.ndarray:
    """Inverse-frequency weights per class, for a weighted cross-entropy loss.

    Args:
        labels: The class index of each training image.
        num_classes: How many classes the model has.

    Returns:
        float32 ``[num_classes]``: present classes average 1, rarer ones weigh more; classes
        absent from ``labels`` get 0.

    Raises:
        ValueError: No labels, or a label outside ``0 .. num_classes - 1``.
    """
    counts = _label_counts(labels, num_classes)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = 1.0 / counts[present]
    weights[present] /= weights[present].mean()
    return weights.astype(np.float32)


def balanced_sample_weights(labels: Sequence[int]) -> np.ndarray:
    """Per-image sampling weights under which every class is drawn equally often.

    Args:
        labels: The class index of each training image.

    Returns:
        float64 ``[len(labels)]`` averaging 1, for a weighted random sampler.
    """
    array = np.asarray(labels, dtype=np.int64).reshape(-1)
    if array.size == 0:
        return np.zeros(0, dtype=np.float64)
    counts = _label_counts(array, int(array.max()) + 1)
    weights = 1.0 / counts[array]
    return weights / weights.mean()


def _label_counts(labels: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    array = np.asarray(labels, dtype=np.int64).reshape(-1)
    if array.size == 0:
        raise ValueError("no labels")
    if array.min() < 0 or array.max() >= num_classes:
        raise ValueError(f"labels must be between 0 and {num_classes - 1}")
    return np.bincount(array, minlength=num_classes).astype(np.float64)
