"""Pixel conversion for every decoded image: bit depth, colour profile and mode to 8-bit sRGB.

The one place that decides what a pixel value means, so the screen (thumbnails, previews),
training and inference all see the same 8-bit sRGB image.

Bit depth policy (:data:`BIT_DEPTH_POLICY`, recorded in every model's spec): integer images
stored in more than 8 bits (Pillow modes ``I;16*`` and ``I``) are stretched from the range
their pixels actually use (minimum → 0, maximum → 255). Scientific and medical cameras store
12 or 14 bits in 16, and microscopes often fill only a narrow band (1000..3000, say); dividing
by 257 made those nearly black, and guessing the bit depth from the maximum (12-bit if
≤ 4095) still leaves a narrow band dim and flat. A min–max stretch is also what image viewers
for such data (ImageJ/Fiji) show by default, and the model, trained on 8-bit photos that use
most of their range, classifies it best (tests/core/test_pixels.py measures this). The
cost: a dark 16-bit frame is brightened, and one hot pixel limits the stretch. A constant
image is scaled by its type's full range instead. Float images (mode ``F``) whose values lie
in [0, 1] are intensities and are scaled by 255; other floats are stretched min–max; NaN
counts as the minimum. 8-bit images are never stretched.

Colour: an embedded ICC profile on an RGB, RGBA or CMYK image is converted to sRGB with
LittleCMS (``PIL.ImageCms``, perceptual intent); a profile that cannot be read leaves the
pixels as they are and adds a warning.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageCms

BIT_DEPTH_POLICY = "min-max"
"""How images deeper than 8 bits become 8-bit: see the module docstring."""

BIT_DEPTH_POLICIES = (BIT_DEPTH_POLICY,)
"""Policies this version implements (a model spec must name one of them)."""

_CMS_MODES = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB"}


class PixelError(ValueError):
    """An image's mode cannot be converted to RGB."""


def to_srgb(im: Image.Image) -> tuple[Image.Image, tuple[str, ...]]:
    """Convert ``im`` from its embedded ICC profile to sRGB.

    Args:
        im: A loaded image; its ``info["icc_profile"]`` (if any) says what its values mean.

    Returns:
        ``(image, warnings)``: the converted image (``im`` itself when there is no profile,
        the profile already is sRGB, or the mode has no colour profile to apply) and the
        warnings (a profile that could not be read or applied).
    """
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in _CMS_MODES:
        return im, ()
    try:
        transform = _transform_to_srgb(bytes(icc), im.mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        return im, (f"colour profile ignored (cannot be read: {_first_line(exc)})",)
    if transform is None:
        return im, ()
    try:
        converted = transform.apply(im)
    except (ImageCms.PyCMSError, ValueError) as exc:
        return im, (f"colour profile ignored (cannot be applied: {_first_line(exc)})",)
    converted.info = {k: v for k, v in im.info.items() if k != "icc_profile"}
    return converted, ()


@functools.lru_cache(maxsize=32)
def _transform_to_srgb(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The LittleCMS transform from ``icc`` to sRGB for ``mode``; None when already sRGB."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    if source.profile.xcolor_space.strip() != {"CMYK": "CMYK"}.get(mode, "RGB"):
        raise ValueError(f"a {source.profile.xcolor_space.strip()} profile on a {mode} image")
    description = (source.profile.profile_description or "").strip()
    if mode != "CMYK" and description.lower().startswith("srgb"):
        return None  # Already sRGB: skip a near-identity transform.
    return ImageCms.buildTransform(
        source, _SRGB, mode, _CMS_MODES[mode], ImageCms.Intent.PERCEPTUAL
    )


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert a loaded image of any Pillow mode to 8-bit RGB (RGB images are kept as is).

    Deep and float images follow :data:`BIT_DEPTH_POLICY`; transparency is composited on
    white.

    Raises:
        PixelError: The mode cannot be converted.
    """
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode in ("I", "F") or mode.startswith("I;16"):
        return Image.fromarray(to_uint8(im), "L").convert("RGB")
    if mode == "La":
        im, mode = im.convert("LA"), "LA"
    has_alpha = (
        mode in ("RGBA", "LA", "PA", "RGBa")
        or "transparency" in im.info
        or (mode == "P" and im.palette is not None and im.palette.mode == "RGBA")
    )
    try:
        if has_alpha:  # Pasted onto white through its own alpha: two images in memory, not four.
            rgba = im.convert("RGBA")
            white = Image.new("RGB", im.size, (255, 255, 255))
            white.paste(rgba, mask=rgba)
            return white
        return im.convert("RGB")
    except ValueError as exc:
        raise PixelError(f"unsupported image mode {mode}") from exc


def to_uint8(im: Image.Image) -> np.ndarray:
    """A 16-bit, 32-bit integer or float single-channel image as uint8, by the policy.

    Works through the rows in blocks, so a 100-megapixel frame needs about its own size in
    extra memory, not eight times that in 64-bit temporaries.
    """
    data = np.asarray(im)
    out = np.empty(data.shape, np.uint8)
    if im.mode == "F":
        low, high = _finite_range(data)
        for rows in _row_blocks(data):
            values = np.nan_to_num(data[rows].astype(np.float64), nan=low, posinf=high, neginf=low)
            if low >= 0.0 and high <= 1.0:
                scaled = values * 255.0  # Floats in [0, 1] are normalised intensities.
            elif high > low:
                scaled = (values - low) * (255.0 / (high - low))
            else:
                scaled = np.full(values.shape, 255.0 if low > 0 else 0.0)
            out[rows] = np.clip(np.rint(scaled), 0, 255)
    else:
        low, high = (int(data.min()), int(data.max())) if data.size else (0, 0)
        if high > low:
            for rows in _row_blocks(data):
                values = data[rows].astype(np.int64)
                out[rows] = ((values - low) * 510 + (high - low)) // (2 * (high - low))  # rounded
        else:  # Constant: scale by the type's full range.
            full = 65535 if im.mode.startswith("I;16") else 2**31 - 1
            out[...] = np.clip(round(low * 255 / full), 0, 255)
    transparent = im.info.get("transparency")
    if isinstance(transparent, int) and im.mode != "F":
        out[data == transparent] = 255  # Transparent pixels show the white background.
    return out


_BLOCK_ELEMENTS = 1 << 18


def _row_blocks(data: np.ndarray) -> list[slice]:
    """Slices of whole rows of about 250,000 elements each."""
    step = max(1, _BLOCK_ELEMENTS // max(1, data[0].size if len(data) else 1))
    return [slice(start, start + step) for start in range(0, len(data), step)]


def _finite_range(data: np.ndarray) -> tuple[float, float]:
    """The smallest and largest finite value of a float array; (0, 0) when there is none."""
    low, high = np.inf, -np.inf
    for rows in _row_blocks(data):
        finite = data[rows][np.isfinite(data[rows])]
        if finite.size:
            low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    return (low, high) if low <= high else (0.0, 0.0)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
