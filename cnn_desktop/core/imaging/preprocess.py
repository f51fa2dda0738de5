"""Preprocessing derived from a model's spec, identical for every backend.

The functions take any object with the fields below (a
:class:`cnn_desktop.core.models.ModelSpec` is one), so image handling needs nothing from the
model layer above it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from PIL import Image

from cnn_desktop.core.imaging.loading import load_image


class PreprocessingSpec(Protocol):
    """The fields of a model spec that preprocessing reads."""

    @property
    def input_size(self) -> tuple[int, int]: ...
    @property
    def channels(self) -> int: ...
    @property
    def resize_mode(self) -> str: ...
    @property
    def crop_fraction(self) -> float: ...
    @property
    def interpolation(self) -> str: ...
    @property
    def mean(self) -> Sequence[float]: ...
    @property
    def std(self) -> Sequence[float]: ...


_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def decode_min_side(spec: PreprocessingSpec) -> int:
    """The shorter side a decoded image needs before resizing (lets JPEG decode at 1/2..1/8)."""
    target = max(spec.input_size)
    if spec.resize_mode == "shorter_side_center_crop":
        return math.ceil(target / spec.crop_fraction)
    return target


def crop_box(width: int, height: int, spec: PreprocessingSpec) -> tuple[float, float, float, float]:
    """The region of a ``width``×``height`` image that ends up in the network input."""
    if spec.resize_mode == "stretch":
        return (0.0, 0.0, float(width), float(height))
    out_h, out_w = spec.input_size
    # Resize so the shorter side becomes input/crop_fraction, then centre-crop the input size.
    scale = (min(out_h, out_w) / spec.crop_fraction) / min(width, height)
    box_w, box_h = min(out_w / scale, width), min(out_h / scale, height)
    left, top = (width - box_w) / 2, (height - box_h) / 2
    return (left, top, left + box_w, top + box_h)


def fit_image(image: Image.Image, spec: PreprocessingSpec) -> Image.Image:
    """Resize and crop an RGB image to the network input, in the model's colour mode."""
    if spec.channels == 1 and image.mode != "L":
        image = image.convert("L")
    return fit_region(image, crop_box(image.width, image.height, spec), spec)


def fit_region(
    image: Image.Image, box: tuple[float, float, float, float], spec: PreprocessingSpec
) -> Image.Image:
    """Resize the ``box`` (left, top, right, bottom) of an image to the network input with
    the spec's filter (no colour conversion)."""
    out_h, out_w = spec.input_size
    return image.resize((out_w, out_h), _FILTERS[spec.interpolation], box=box)


def to_tensor(image: Image.Image, spec: PreprocessingSpec) -> np.ndarray:
    """A fitted image as a normalised float32 ``[C, H, W]`` array."""
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    std = np.asarray(spec.std, dtype=np.float32)
    scale = (1.0 / (255.0 * std))[:, None, None]
    offset = (np.asarray(spec.mean, dtype=np.float32) / std)[:, None, None]
    out = np.empty((pixels.shape[2], pixels.shape[0], pixels.shape[1]), dtype=np.float32)
    np.multiply(pixels.transpose(2, 0, 1), scale, out=out)
    out -= offset
    return out


def preprocess_image(image: Image.Image, spec: PreprocessingSpec) -> np.ndarray:
    """An RGB image → the normalised ``[C, H, W]`` network input."""
    return to_tensor(fit_image(image, spec), spec)


def load_and_preprocess(path: str | os.PathLike[str], spec: PreprocessingSpec) -> np.ndarray:
    """Load a file safely and turn it into the network input.

    Raises:
        ImageLoadError: The file cannot be read as an image.
    """
    return preprocess_image(load_image(path, min_side=decode_min_side(spec)), spec)
