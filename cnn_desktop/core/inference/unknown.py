"""Scoring images with a model's unknown ("none of these") detector (numpy only).

Two scores, because each misses what the other catches: the softmax score (1 minus the top
calibrated probability) is high for an image that looks like two classes at once, but a photo
far from every class can still land confidently in one; the k-NN distance (1 minus the cosine
similarity of the k-th nearest training embedding) is high for an image unlike any training
image, but misses one that sits between classes. Each is scaled by its spread on the
validation images and the two are summed; above the detector's threshold the image is
unknown, and its predictions stay as the closest classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cnn_desktop.core.models.unknown import UnknownDetector

UNKNOWN_MODES = ("auto", "off")
_ROWS_AT_ONCE = 256


def softmax_score(probabilities: np.ndarray) -> np.ndarray:
    """1 minus each row's top probability: 0 for a sure answer, near 1 - 1/classes for none."""
    return 1.0 - np.asarray(probabilities, np.float64).max(axis=1)


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (float32; an all-zero row stays zero)."""
    vectors = np.asarray(embeddings, np.float32).reshape(len(embeddings), -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def knn_distance(bank: np.ndarray, embeddings: np.ndarray, neighbours: int) -> np.ndarray:
    """1 minus the cosine similarity of each embedding to its ``neighbours``-th nearest row of
    ``bank`` (rows of unit length)."""
    queries = unit_rows(embeddings)
    k = max(1, min(int(neighbours), len(bank)))
    distances = np.empty(len(queries), np.float64)
    for start in range(0, len(queries), _ROWS_AT_ONCE):
        similarity = queries[start : start + _ROWS_AT_ONCE] @ bank.T
        kth = np.partition(similarity, len(bank) - k, axis=1)[:, len(bank) - k]
        distances[start : start + _ROWS_AT_ONCE] = 1.0 - kth
    return distances


def unknown_scores(
    detector: UnknownDetector, probabilities: np.ndarray, embeddings: np.ndarray
) -> np.ndarray:
    """The combined score of each image; above ``detector.threshold`` it is unknown.

    Raises:
        ValueError: The embeddings are not as wide as the detector's.
    """
    embeddings = np.asarray(embeddings).reshape(len(embeddings), -1)
    if embeddings.shape[1] != detector.width:
        raise ValueError(
            f"the model's embeddings have {embeddings.shape[1]} values, its unknown detector "
            f"expects {detector.width}"
        )
    softmax = (softmax_score(probabilities) - detector.softmax_center) / detector.softmax_scale
    distance = knn_distance(detector.bank, embeddings, detector.neighbours)
    return softmax + (distance - detector.distance_center) / detector.distance_scale


def choose_detector(classifier: Any, mode: str) -> tuple[UnknownDetector | None, str]:
    """The detector to use for ``classifier`` with ``--unknown mode`` and, when ``auto`` finds
    none to use, one sentence saying why ("unknown" is then null).

    Raises:
        ValueError: ``mode`` is not one of :data:`UNKNOWN_MODES`.
    """
    if mode not in UNKNOWN_MODES:
        raise ValueError(f"unknown mode {mode!r} (choose from {', '.join(UNKNOWN_MODES)})")
    detector = getattr(getattr(classifier, "bundle", None), "unknown", None)
    if mode == "off":
        return None, ""
    if detector is None:
        return None, (
            f"{classifier.spec.name} has no unknown detector (models trained with cnn-desktop "
            'have one; the built-in ImageNet model does not), so "unknown" is not decided'
        )
    if not hasattr(classifier, "predict_with_embeddings"):
        return None, (
            f"the unknown detector runs on the ONNX backend only, not on {classifier.backend}, "
            'so "unknown" is not decided'
        )
    return detector, ""


def scored_inference(
    classifier: Any, detector: UnknownDetector
) -> Callable[[np.ndarray], np.ndarray]:
    """A batch function returning each image's probabilities followed by one more column,
    its unknown score (compare with ``detector.threshold``)."""

    def infer(batch: np.ndarray) -> np.ndarray:
        probabilities, embeddings = classifier.predict_with_embeddings(batch)
        scores = unknown_scores(detector, probabilities, embeddings)
        return np.concatenate([probabilities, scores[:, None].astype(probabilities.dtype)], 1)

    return infer
