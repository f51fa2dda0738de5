"""Training-time augmentation, chosen by name, applied to PIL images (imports torchvision).

Each pipeline draws from its own seeded generator; torch's global random state is never used."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from cnn_desktop.core.imaging.preprocess import fit_image
from cnn_desktop.core.models.spec import ModelSpec

AUGMENTATIONS = {
    "flip": "random horizontal flip",
    "vflip": "random vertical flip",
    "rotate": "random rotation up to ±15°",
    "crop": "random resized crop (60–100 % of the image)",
    "color": "brightness, contrast, saturation and hue jitter",
    "blur": "occasional Gaussian blur",
    "noise": "occasional Gaussian pixel noise",
}


class AugmentationError(ValueError):
    """An unknown augmentation name."""


def parse_augmentations(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"flip,crop"`` (or a list) → validated names; ``"none"`` or empty → ().

    Raises:
        AugmentationError: A name is not one of :data:`AUGMENTATIONS`.
    """
    if text is None:
        return ()
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n and n != "none"]
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        known = ", ".join(AUGMENTATIONS)
        raise AugmentationError(f"unknown augmentation {', '.join(unknown)} (choose from {known})")
    return tuple(dict.fromkeys(names))


def build_augmentation(
    names: Sequence[str], spec: ModelSpec, seed: int | None = None
) -> Callable[[Image.Image], Image.Image]:
    """A function turning a loaded RGB image into an augmented network-sized image.

    Every random choice comes from one private ``numpy`` generator seeded with ``seed``, and
    torchvision's deterministic functional operations apply them, so the same seed gives the
    same images and torch's global random state is neither used nor changed. Without
    augmentation it is the same ``fit_image`` used at inference, so training sees exactly
    what classification will.
    """
    from torchvision.transforms.v2 import functional as tvf

    rng = np.random.default_rng(seed)
    size = list(spec.input_size)

    def augment(image: Image.Image) -> Image.Image:
        if "rotate" in names:
            image = tvf.rotate(image, float(rng.uniform(-15.0, 15.0)))
        if "color" in names:
            image = _jitter_colour(image, rng)
        if "blur" in names and rng.random() < 0.3:
            sigma = float(rng.uniform(0.1, 1.5))
            image = tvf.gaussian_blur(image, [5, 5], [sigma, sigma])
        if "crop" in names:
            top, left, height, width = _random_crop_box(image.height, image.width, rng)
            image = tvf.resized_crop(image, top, left, height, width, size, antialias=True)
        else:
            image = fit_image(image, spec)
        if spec.channels == 1 and image.mode != "L":
            image = image.convert("L")
        if "flip" in names and rng.random() < 0.5:
            image = tvf.horizontal_flip(image)
        if "vflip" in names and rng.random() < 0.5:
            image = tvf.vertical_flip(image)
        if "noise" in names and rng.random() < 0.3:
            pixels = np.asarray(image, dtype=np.float32)
            pixels = pixels + rng.normal(0, 8.0, pixels.shape)
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), image.mode)
        return image

    return augment


def _jitter_colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast and saturation ×0.7–1.3 and hue ±0.05, in a random order."""
    from torchvision.transforms.v2 import functional as tvf

    steps = [
        lambda im: tvf.adjust_brightness(im, float(rng.uniform(0.7, 1.3))),
        lambda im: tvf.adjust_contrast(im, float(rng.uniform(0.7, 1.3))),
        lambda im: tvf.adjust_saturation(im, float(rng.uniform(0.7, 1.3))),
        lambda im: tvf.adjust_hue(im, float(rng.uniform(-0.05, 0.05))),
    ]
    for index in rng.permutation(len(steps)):
        image = steps[index](image)
    return image


def _random_crop_box(
    height: int, width: int, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop of 60–100 % of the area with an aspect of
    3:4 to 4:3 (torchvision's RandomResizedCrop rule), the centre crop when none fits."""
    area = height * width
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target_area = area * rng.uniform(0.6, 1.0)
        aspect = math.exp(rng.uniform(*log_ratio))
        crop_w = round(math.sqrt(target_area * aspect))
        crop_h = round(math.sqrt(target_area / aspect))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            return top, left, crop_h, crop_w
    ratio = width / height
    if ratio < 3 / 4:
        crop_w, crop_h = width, round(width / (3 / 4))
    elif ratio > 4 / 3:
        crop_h, crop_w = height, round(height * (4 / 3))
    else:
        crop_w, crop_h = width, height
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def augmentation_preview(
    image: Image.Image, names: Sequence[str], spec: ModelSpec, count: int = 8, seed: int = 0
) -> list[Image.Image]:
    """``count`` augmented versions of one image, for a preview grid (its own random stream:
    a training run in another thread is not disturbed)."""
    augment = build_augmentation(names, spec, seed)
    return [augment(image.copy()) for _ in range(count)]
