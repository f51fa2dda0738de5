"""From the model's crop back to the user's image: where a heatmap's pixels lie in the input.

Preprocessing (``cnn_desktop.core.imaging.preprocess``) resizes an image and cuts the network
input out of it; :func:`crop_box` says which region of the original that is. A map computed on
the network input (a 7×7 CAM, a Grad-CAM, an occlusion grid) covers exactly that region, so
mapping it back is a bilinear resampling into the box, with zeros outside it (the model never
saw those pixels). Pure numpy; no model needed.
"""

from __future__ import annotations

import math

import numpy as np

from cnn_desktop.core.imaging.preprocess import PreprocessingSpec, crop_box

Box = tuple[float, float, float, float]


def _axis_weights(count: int, start: float, end: float, cells: int) -> tuple[np.ndarray, ...]:
    """For ``count`` output pixels along one axis: the two map cells each samples, the weight
    of the second, and whether the pixel's centre lies inside ``[start, end)``."""
    centres = np.arange(count, dtype=np.float64) + 0.5
    inside = (centres >= start) & (centres < end)
    span = max(end - start, 1e-12)
    position = (centres - start) / span * cells - 0.5  # in map-cell coordinates
    position = np.clip(position, 0.0, cells - 1.0)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, cells - 1)
    return low, high, (position - low).astype(np.float32), inside


def resample_into_box(heatmap: np.ndarray, size: tuple[int, int], box: Box) -> np.ndarray:
    """Spread a 2-D map over the region ``box`` of a ``width``×``height`` image.

    Args:
        heatmap: ``[h, w]`` values covering ``box`` (cell centres at the centres of an even
            ``h``×``w`` split of the box).
        size: ``(width, height)`` of the image.
        box: ``(left, top, right, bottom)`` in image pixels (fractions allowed).

    Returns:
        ``[height, width]`` float32: bilinear between cell centres, the edge cells' values
        up to the box's edges, 0 for pixels whose centre lies outside the box.
    """
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2 or heat.size == 0:
        raise ValueError(f"a heatmap must be a non-empty 2-D array, got shape {heat.shape}")
    width, height = size
    left, top, right, bottom = box
    col_low, col_high, col_weight, cols_inside = _axis_weights(width, left, right, heat.shape[1])
    row_low, row_high, row_weight, rows_inside = _axis_weights(height, top, bottom, heat.shape[0])
    along_cols = heat[:, col_low] * (1 - col_weight) + heat[:, col_high] * col_weight
    rows = (
        along_cols[row_low] * (1 - row_weight)[:, None] + along_cols[row_high] * row_weight[:, None]
    )
    rows *= rows_inside[:, None]
    rows *= cols_inside[None, :]
    return rows.astype(np.float32, copy=False)


def map_to_input(
    heatmap: np.ndarray, spec: PreprocessingSpec, original_size: tuple[int, int]
) -> np.ndarray:
    """A map made on the network input, laid over the original image.

    Args:
        heatmap: ``[h, w]`` map of the network input (any resolution: it covers the crop).
        spec: The model's preprocessing (resize mode, crop fraction, input size).
        original_size: ``(width, height)`` of the image as loaded (after EXIF rotation).

    Returns:
        ``[height, width]`` float32, 0 outside the region the model saw.
    """
    width, height = original_size
    return resample_into_box(heatmap, original_size, crop_box(width, height, spec))


def seen_pixels(
    spec: PreprocessingSpec, original_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The whole pixels ``(left, top, right, bottom)`` (right and bottom exclusive) of the
    original that :func:`map_to_input` counts as seen: those whose centre lies in the crop."""
    left, top, right, bottom = crop_box(*original_size, spec)
    return tuple(math.ceil(edge - 0.5) for edge in (left, top, right, bottom))  # type: ignore[return-value]


def peak_in_box(heatmap: np.ndarray, box: Box) -> tuple[int, int]:
    """The image pixel ``(x, y)`` at the centre of the map's strongest cell (the first of
    equals), for a map covering ``box``."""
    heat = np.asarray(heatmap, dtype=np.float32)
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    left, top, right, bottom = box
    x = left + (col + 0.5) * (right - left) / heat.shape[1]
    y = top + (row + 0.5) * (bottom - top) / heat.shape[0]
    return int(x), int(y)


def peak_in_input(
    heatmap: np.ndarray, spec: PreprocessingSpec, original_size: tuple[int, int]
) -> tuple[int, int]:
    """Where the map of the network input is strongest, in original-image pixels ``(x, y)``."""
    width, height = original_size
    return peak_in_box(heatmap, crop_box(width, height, spec))


def heatmap_to_uint8(heatmap: np.ndarray) -> np.ndarray:
    """A 0..1 map as 8-bit grey levels (0..255, rounded)."""
    values = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0.0, 1.0)
    return np.rint(values * 255.0).astype(np.uint8)
