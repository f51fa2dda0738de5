"""Near neighbours in embedding space, computed block by block.

Cosine similarity of L2-normalised embeddings, one block of rows against all the others at a
time: 10,000 images need a ``block × 10,000`` float32 array (40 MB), never the whole
10,000 × 10,000 matrix. One pass gives both the pairs above a similarity threshold (the
near-duplicates) and each image's nearest neighbours (for the outliers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnn_desktop.core.tasks import CancelToken, ProgressCallback, no_progress

BLOCK_ROWS = 1024
NEIGHBOURS = 5


@dataclass(frozen=True)
class Neighbourhood:
    """What one pass over the similarities found.

    Attributes:
        pairs: ``(i, j, similarity)`` for every ``i < j`` at or above the threshold.
        nearest: ``[N, k]`` indices of each image's k most similar other images.
        nearest_similarity: ``[N, k]`` their cosine similarities, highest first.
    """

    pairs: list[tuple[int, int, float]]
    nearest: np.ndarray
    nearest_similarity: np.ndarray


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` with every row scaled to length 1 (a zero row stays zero), as float32."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def neighbourhood(
    x: np.ndarray,
    threshold: float,
    *,
    neighbours: int = NEIGHBOURS,
    block_rows: int = BLOCK_ROWS,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> Neighbourhood:
    """Pairs with cosine similarity ≥ ``threshold`` and the ``neighbours`` nearest of each row.

    Args:
        x: Embeddings ``[N, features]`` (any scale: they are normalised here).
        threshold: Pairs at or above this similarity are returned.
        neighbours: How many nearest neighbours to keep per image (fewer if N is small).
        block_rows: Rows compared with all the others at once.
        progress: Called with (fraction done, message).
        cancel: Checked between blocks.
    """
    unit = unit_rows(x)
    count = len(unit)
    k = max(0, min(neighbours, count - 1))
    nearest = np.zeros((count, k), np.int64)
    nearest_similarity = np.zeros((count, k), np.float32)
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, count, block_rows):
        if cancel is not None:
            cancel.raise_if_cancelled()
        stop = min(start + block_rows, count)
        similarity = unit[start:stop] @ unit.T
        rows = np.arange(stop - start)
        similarity[rows, rows + start] = -np.inf  # an image is not its own neighbour
        above_i, above_j = np.nonzero(similarity >= threshold)
        keep = above_j > above_i + start
        pairs.extend(
            (int(i) + start, int(j), float(similarity[i, j]))
            for i, j in zip(above_i[keep], above_j[keep], strict=True)
        )
        if k:
            top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            top_similarity = np.take_along_axis(similarity, top, axis=1)
            order = np.argsort(-top_similarity, axis=1, kind="stable")
            nearest[start:stop] = np.take_along_axis(top, order, axis=1)
            nearest_similarity[start:stop] = np.take_along_axis(top_similarity, order, axis=1)
        progress(stop / count, f"Comparing images: {stop}/{count}")
    return Neighbourhood(pairs, nearest, nearest_similarity)


def outlier_indices(nearest_similarity: np.ndarray, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Images far from every other: their mean distance (1 − cosine similarity) to their
    nearest neighbours lies more than ``spread`` robust standard deviations (1.4826 × the
    median absolute deviation) above the median. Returns (indices, distances), farthest first.
    """
    if nearest_similarity.size == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    distance = 1.0 - nearest_similarity.astype(np.float64).mean(axis=1)
    median = float(np.median(distance))
    deviation = 1.4826 * float(np.median(np.abs(distance - median)))
    limit = median + spread * max(deviation, 1e-6)
    far = np.flatnonzero(distance > limit)
    far = far[np.argsort(-distance[far], kind="stable")]
    return far, distance[far]
