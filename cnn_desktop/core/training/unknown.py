"""Fitting a trained model's unknown ("none of these") detector (numpy only, every mode).

The training images' embeddings become the k-NN bank (a class-stratified sample of at most
:data:`BANK_LIMIT`); the validation images, which the bank has not seen, set the scale of the
two scores (:mod:`cnn_desktop.core.inference.unknown`) and the threshold, so that
:data:`KEEP_RATE` of them stay known. Too few validation images make no detector.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnn_desktop.core.inference.unknown import knn_distance, softmax_score, unit_rows
from cnn_desktop.core.models.unknown import METHOD, UnknownDetector

KEEP_RATE = 0.95
NEIGHBOURS = 3
BANK_LIMIT = 5000
MIN_VALIDATION_IMAGES = 20
_MIN_SCALE = 1e-6
_DECIMALS = 6


def fit_unknown_detector(
    train_embeddings: np.ndarray,
    train_labels: np.ndarray,
    val_probabilities: np.ndarray,
    val_embeddings: np.ndarray,
    seed: int = 0,
) -> tuple[UnknownDetector | None, dict[str, Any]]:
    """Fit the detector from training embeddings and the validation outputs.

    Args:
        train_embeddings: ``[N, D]`` embeddings of the training images (unaugmented).
        train_labels: ``[N]`` their classes (the bank keeps every class when it samples).
        val_probabilities: ``[V, classes]`` calibrated probabilities of the validation images.
        val_embeddings: ``[V, D]`` their embeddings.
        seed: Seed of the bank's sample.

    Returns:
        The detector (None when there are fewer than :data:`MIN_VALIDATION_IMAGES` validation
        images or no training images) and the ``unknown`` block of ``metrics.json``:
        ``{"method", "threshold", "fitted_on": "validation", "validation_images",
        "validation_keep_rate", "neighbours", "bank_size"}``, or ``{"method": None,
        "reason"}`` when none was fitted.
    """
    train = np.asarray(train_embeddings, np.float32).reshape(len(train_embeddings), -1)
    val_embeddings = np.asarray(val_embeddings, np.float32)
    if val_embeddings.size:
        val_embeddings = val_embeddings.reshape(len(val_embeddings), -1)
    else:  # an empty validation split: no detector (below), but a well-formed array
        val_embeddings = np.zeros((len(val_embeddings), train.shape[1]), np.float32)
    if len(val_embeddings) < MIN_VALIDATION_IMAGES or not len(train):
        reason = (
            f"{len(val_embeddings)} validation images; the unknown detector's threshold needs "
            f"at least {MIN_VALIDATION_IMAGES}"
            if len(train)
            else "no training images"
        )
        return None, {"method": None, "reason": reason}
    bank = unit_rows(train[bank_rows(np.asarray(train_labels), BANK_LIMIT, seed)])
    bank = bank.astype(np.float16).astype(np.float32)  # as the file stores it
    neighbours = min(NEIGHBOURS, len(bank))
    softmax = softmax_score(val_probabilities)
    distance = knn_distance(bank, val_embeddings, neighbours)
    softmax_center, softmax_scale = _center_and_scale(softmax)
    distance_center, distance_scale = _center_and_scale(distance)
    combined = (softmax - softmax_center) / softmax_scale
    combined += (distance - distance_center) / distance_scale
    threshold = float(np.quantile(combined, KEEP_RATE))
    keep_rate = float(np.mean(combined <= threshold))
    detector = UnknownDetector(
        bank=bank,
        neighbours=neighbours,
        softmax_center=softmax_center,
        softmax_scale=softmax_scale,
        distance_center=distance_center,
        distance_scale=distance_scale,
        threshold=threshold,
        keep_rate=keep_rate,
    )
    return detector, {
        "method": METHOD,
        "threshold": round(threshold, _DECIMALS),
        "fitted_on": "validation",
        "validation_images": len(val_embeddings),
        "validation_keep_rate": round(keep_rate, _DECIMALS),
        "neighbours": neighbours,
        "bank_size": len(bank),
    }


def _center_and_scale(scores: np.ndarray) -> tuple[float, float]:
    """The median and the 95th percentile's distance from it (never 0)."""
    center = float(np.median(scores))
    return center, max(float(np.quantile(scores, KEEP_RATE)) - center, _MIN_SCALE)


def bank_rows(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """All row indices, or a sample of ``limit`` keeping each class's share (sorted): the
    training images the detector's bank keeps."""
    count = len(labels)
    if count <= limit:
        return np.arange(count)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        take = max(1, round(limit * len(rows) / count))
        chosen.append(rng.choice(rows, size=min(take, len(rows)), replace=False))
    return np.sort(np.concatenate(chosen))
