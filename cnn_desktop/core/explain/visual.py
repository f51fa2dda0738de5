"""Colour maps and image helpers for showing activations: colorize, grids, overlays."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image


class ExplainError(ValueError):
    """An explanation cannot be made (unknown layer, colour map, class...); says why."""


# Colormaps: matplotlib's 256-entry tables (inferno and viridis are CC0) sampled at entries
# 0, 16, ..., 240, 255 and interpolated back to 256 entries; jet is piecewise linear per channel.
_ANCHORS = {
    "inferno": "000004 0b0724 210c4a 3d0965 57106e 71196e 8a226a a32c61 bc3754 "
    "d24644 e45a31 f1731d f98e09 fcac11 f9cb35 f2ea69 fcffa4",
    "viridis": "440154 48186a 472d7b 424086 3b528b 33638d 2c728e 26828e 21918c "
    "1fa088 28ae80 3fbc73 5ec962 84d44b addc30 d8e219 fde725",
}
_JET = (  # (positions, values) per channel
    ((0, 0.35, 0.66, 0.89, 1), (0, 0, 1, 1, 0.5)),
    ((0, 0.125, 0.375, 0.64, 0.91, 1), (0, 0, 1, 1, 0, 0)),
    ((0, 0.11, 0.34, 0.65, 1), (0.5, 1, 1, 0, 0)),
)
COLORMAPS = ("inferno", "viridis", "jet", "gray")
_LUTS: dict[str, np.ndarray] = {}


def colormap_lut(name: str) -> np.ndarray:
    """The ``[256, 3]`` uint8 colour table of a colormap in :data:`COLORMAPS`.

    Raises:
        ExplainError: Unknown colormap.
    """
    if name not in _LUTS:
        x = np.linspace(0.0, 1.0, 256)
        if name == "jet":
            lut = np.stack([np.interp(x, pos, val) for pos, val in _JET], axis=1) * 255
        elif name == "gray":
            lut = np.repeat(x[:, None] * 255, 3, axis=1)
        elif name in _ANCHORS:
            colours = [bytes.fromhex(h) for h in _ANCHORS[name].split()]
            anchors = np.asarray([list(c) for c in colours], dtype=np.float64)
            pos = np.minimum(np.arange(len(anchors)) * 16, 255) / 255
            lut = np.stack([np.interp(x, pos, anchors[:, c]) for c in range(3)], axis=1)
        else:
            raise ExplainError(f"unknown colormap '{name}' (choose from {', '.join(COLORMAPS)})")
        _LUTS[name] = np.clip(np.rint(lut), 0, 255).astype(np.uint8)
    return _LUTS[name]


def colorize(
    values: np.ndarray,
    colormap: str = "inferno",
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """Map a 2-D array to ``[h, w, 3]`` uint8 colours (``vmin``/``vmax`` default to its range).

    Colormaps: :data:`COLORMAPS`.
    """
    array = np.nan_to_num(np.asarray(values, dtype=np.float32))
    low = float(array.min()) if vmin is None else vmin
    high = float(array.max()) if vmax is None else vmax
    scale = 255.0 / (high - low) if high > low else 0.0
    index = np.clip((array - low) * scale, 0, 255).astype(np.uint8)
    return colormap_lut(colormap)[index]


def feature_grid(
    maps: np.ndarray,
    order: Sequence[int] | np.ndarray | None = None,
    columns: int | None = None,
    colormap: str = "inferno",
    pad: int = 1,
) -> np.ndarray:
    """Tile channels of ``[channels, h, w]`` maps into one RGB image, each channel scaled to
    its own range. ``order`` picks and orders channels (e.g. the strongest 16)."""
    maps = np.asarray(maps, dtype=np.float32)
    chosen = maps if order is None else maps[np.asarray(order, dtype=np.intp)]
    count, height, width = chosen.shape
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    low = chosen.min(axis=(1, 2), keepdims=True)
    span = chosen.max(axis=(1, 2), keepdims=True) - low
    scaled = np.where(span > 0, (chosen - low) * (255.0 / np.where(span > 0, span, 1)), 0)
    tiles = colormap_lut(colormap)[scaled.astype(np.uint8)]
    grid = np.full(
        (rows * height + (rows - 1) * pad, columns * width + (columns - 1) * pad, 3),
        32,
        np.uint8,
    )
    for k in range(count):
        top, left = (k // columns) * (height + pad), (k % columns) * (width + pad)
        grid[top : top + height, left : left + width] = tiles[k]
    return grid


def overlay(
    image: Image.Image, heatmap: np.ndarray, opacity: float = 0.5, colormap: str = "jet"
) -> Image.Image:
    """Blend a 0..1 heatmap (resized bilinearly to the image) over an image."""
    base = image.convert("RGB")
    heat = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F")
    heat = np.asarray(heat.resize(base.size, Image.Resampling.BILINEAR))
    colours = colorize(heat, colormap, 0.0, 1.0).astype(np.float32)
    blended = (1 - opacity) * np.asarray(base, np.float32) + opacity * colours
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
