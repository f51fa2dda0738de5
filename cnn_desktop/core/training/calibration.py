"""Calibrated confidences: temperature scaling fitted on validation logits, the expected
calibration error (ECE) and the bins of a reliability diagram. numpy only (no torch), so
head-mode training in the lite build calibrates too.

Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", 2017) divides a
model's logits by one number T > 0 before the softmax: ``softmax(logits / T)``. It never
changes which class is on top (accuracy is unchanged), only how sure the model says it is:
T > 1 softens an overconfident model, T < 1 sharpens an underconfident one (label smoothing
makes a model underconfident). T minimises the negative log-likelihood (NLL) of the
validation labels, with a weak log-normal prior on T (one image's worth: see
:data:`LOG_TEMPERATURE_PRIOR_SD`) so that a small validation set the model gets entirely
right does not drive T to the bound, where every answer would read 100 %.

The functions take logits and labels, not a model, so any mode (and later the unknown
detector and label review, which use the same validation outputs) can call them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnn_desktop.core.models.spec import TEMPERATURE_RANGE

ECE_BINS = 15
LOG_TEMPERATURE_PRIOR_SD = 1.0
"""The prior on ``log T`` is normal around 0 with this spread, added to the summed NLL once:
negligible for hundreds of validation images, decisive only when the NLL has no minimum."""

_GRID_POINTS = 61  # a coarse scan of log T first, so the fine search starts near the minimum
_GOLDEN = (math.sqrt(5) - 1) / 2
_DECIMALS = 6


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` in float64, stable for large logits."""
    scaled = np.asarray(logits, np.float64) / temperature
    if not scaled.size:
        return scaled
    scaled -= scaled.max(axis=1, keepdims=True)
    np.exp(scaled, out=scaled)
    scaled /= scaled.sum(axis=1, keepdims=True)
    return scaled


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean ``-log p(true class)`` of ``softmax(logits / temperature)``."""
    scaled = np.asarray(logits, np.float64) / temperature
    top = scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(scaled - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(log_norm - scaled[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the NLL of ``labels`` (with the weak prior on log T).

    A scan of ``log T`` over the allowed range (:data:`TEMPERATURE_RANGE`), then a
    golden-section search between the neighbours of the best grid point: robust whether or
    not the objective is unimodal, and exact to about 1e-6 in ``log T``.

    Args:
        logits: ``[N, classes]`` raw scores (before any softmax).
        labels: ``[N]`` true class indices.

    Returns:
        T within :data:`TEMPERATURE_RANGE`; 1.0 when there are no labelled samples.
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, np.int64).reshape(-1)
    count = len(labels)
    if count == 0 or logits.ndim != 2 or logits.shape[1] < 2:
        return 1.0

    def objective(log_t: float) -> float:
        prior = 0.5 * (log_t / LOG_TEMPERATURE_PRIOR_SD) ** 2
        return negative_log_likelihood(logits, labels, math.exp(log_t)) + prior / count

    low, high = (math.log(bound) for bound in TEMPERATURE_RANGE)
    grid = np.linspace(low, high, _GRID_POINTS)
    values = [objective(float(point)) for point in grid]
    best = int(np.argmin(values))
    a, b = float(grid[max(best - 1, 0)]), float(grid[min(best + 1, len(grid) - 1)])
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = objective(c), objective(d)
    while b - a > 1e-6:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = objective(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = objective(d)
    found = min((a + b) / 2, high)
    return float(min(max(math.exp(found), TEMPERATURE_RANGE[0]), TEMPERATURE_RANGE[1]))


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> list[dict[str, Any]]:
    """The bins of a reliability diagram: the top-1 confidences in ``bins`` equal-width bins.

    A confidence ``c`` falls in the bin ``(lower, upper]`` (the first bin also takes 0).

    Returns:
        Per bin ``{"lower", "upper", "count", "confidence", "accuracy"}``: the mean top-1
        confidence and the share of right answers of its images (both None when it is empty).
    """
    confidence, correct = _top1(probabilities, labels)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    result = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        result.append(
            {
                "lower": round(b / bins, _DECIMALS),
                "upper": round((b + 1) / bins, _DECIMALS),
                "count": count,
                "confidence": round(float(confidence[members].mean()), _DECIMALS)
                if count
                else None,
                "accuracy": round(float(correct[members].mean()), _DECIMALS) if count else None,
            }
        )
    return result


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE: the image-weighted mean gap between confidence and accuracy over the bins of
    :func:`reliability_bins` (0 is perfectly calibrated; 0 for no images)."""
    confidence, correct = _top1(probabilities, labels)
    if not len(confidence):
        return 0.0
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    gaps = np.abs(
        np.bincount(index, confidence, minlength=bins) - np.bincount(index, correct, minlength=bins)
    )
    return float(gaps.sum() / counts.sum())


def logits_from_probabilities(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Logits (up to a constant per row, which no softmax sees) of calibrated probabilities:
    ``T · log p``, so that ``softmax(result)`` is the model's uncalibrated output again."""
    return temperature * np.log(np.clip(np.asarray(probabilities, np.float64), 1e-300, None))


def calibration_summary(
    logits: np.ndarray, labels: np.ndarray, temperature: float
) -> dict[str, Any]:
    """ECE and reliability bins of ``logits`` before and after dividing them by ``temperature``.

    Returns:
        ``{"images", "accuracy", "ece_before", "ece_after", "bins_before", "bins_after"}``
        (ECE and accuracy None when there are no images).
    """
    labels = np.asarray(labels, np.int64).reshape(-1)
    before, after = softmax(logits), softmax(logits, temperature)
    count = len(labels)
    return {
        "images": count,
        "accuracy": round(float((before.argmax(1) == labels).mean()), _DECIMALS) if count else None,
        "ece_before": round(expected_calibration_error(before, labels), _DECIMALS)
        if count
        else None,
        "ece_after": round(expected_calibration_error(after, labels), _DECIMALS) if count else None,
        "bins_before": reliability_bins(before, labels),
        "bins_after": reliability_bins(after, labels),
    }


def calibrate(logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Fit the temperature on validation outputs and describe its effect there.

    Returns:
        The ``calibration`` block of ``metrics.json``: ``{"temperature", "fitted_on":
        "validation", "images", "accuracy", "ece_before", "ece_after", "bins_before",
        "bins_after"}`` (a held-out ``"test"`` summary is added by whoever has test images).
    """
    temperature = round(fit_temperature(logits, labels), _DECIMALS)  # as the spec stores it
    return {
        "temperature": temperature,
        "fitted_on": "validation",
        **calibration_summary(logits, labels, temperature),
    }


def _top1(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels, np.int64).reshape(-1)
    if not len(labels):
        return np.zeros(0), np.zeros(0)
    return probabilities.max(axis=1), (probabilities.argmax(axis=1) == labels).astype(np.float64)
