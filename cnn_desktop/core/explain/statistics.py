"""Per-layer statistics of feature maps: summary numbers, a histogram, channel order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnn_desktop.core.explain.visual import ExplainError


@dataclass
class LayerStatistics:
    """Summary numbers of one layer's activations.

    Attributes:
        mean: Mean activation.
        std: Standard deviation.
        zero_fraction: Fraction of values with ``|x| <= 1e-6`` (dead after ReLU-like units).
        min: Smallest value.
        max: Largest value.
        histogram_counts: Values per histogram bin.
        histogram_edges: Bin edges (one more than counts).
        channel_means: Mean activation of each channel.
    """

    mean: float
    std: float
    zero_fraction: float
    min: float
    max: float
    histogram_counts: np.ndarray
    histogram_edges: np.ndarray
    channel_means: np.ndarray


def layer_statistics(maps: np.ndarray, bins: int = 50) -> LayerStatistics:
    """Statistics of feature maps ``[channels, h, w]``."""
    values = np.asarray(maps, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    counts, edges = np.histogram(values, bins=bins, range=(low, high if high > low else low + 1))
    return LayerStatistics(
        mean=float(values.mean()),
        std=float(values.std()),
        zero_fraction=float(np.mean(np.abs(values) <= 1e-6)),
        min=low,
        max=high,
        histogram_counts=counts,
        histogram_edges=edges,
        channel_means=values.reshape(values.shape[0], -1).mean(axis=1),
    )


def channel_order(maps: np.ndarray, by: str = "mean") -> np.ndarray:
    """Channel indices, strongest first, by ``mean``, ``max``, ``std`` or ``l1`` activation."""
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    measures = {
        "mean": flat.mean,
        "max": flat.max,
        "std": flat.std,
        "l1": lambda axis: np.abs(flat).mean(axis=axis),
    }
    if by not in measures:
        raise ExplainError(f"unknown channel order '{by}' (choose from {', '.join(measures)})")
    return np.argsort(-measures[by](axis=1), kind="stable")
