"""Training-time augmentation, chosen by name, applied to PIL images (imports torchvision)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from cnn_desktop.core.preprocess import fit_image
from cnn_desktop.core.spec import ModelSpec

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

    Without augmentation it is the same ``fit_image`` used at inference, so training sees
    exactly what classification will.
    """
    from torchvision.transforms import v2

    height, width = spec.input_size
    rng = np.random.default_rng(seed)
    before: list[object] = []
    if "rotate" in names:
        before.append(v2.RandomRotation(15))
    if "color" in names:
        before.append(v2.ColorJitter(0.3, 0.3, 0.3, 0.05))
    if "blur" in names:
        before.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.3))
    flips = []
    if "flip" in names:
        flips.append(v2.RandomHorizontalFlip())
    if "vflip" in names:
        flips.append(v2.RandomVerticalFlip())
    crop = v2.RandomResizedCrop((height, width), scale=(0.6, 1.0), antialias=True)
    pipeline_before = v2.Compose(before) if before else None
    pipeline_flip = v2.Compose(flips) if flips else None

    def augment(image: Image.Image) -> Image.Image:
        if pipeline_before is not None:
            image = pipeline_before(image)
        image = crop(image) if "crop" in names else fit_image(image, spec)
        if spec.channels == 1 and image.mode != "L":
            image = image.convert("L")
        if pipeline_flip is not None:
            image = pipeline_flip(image)
        if "noise" in names and rng.random() < 0.3:
            pixels = np.asarray(image, dtype=np.float32)
            pixels = pixels + rng.normal(0, 8.0, pixels.shape)
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), image.mode)
        return image

    return augment


def augmentation_preview(
    image: Image.Image, names: Sequence[str], spec: ModelSpec, count: int = 8, seed: int = 0
) -> list[Image.Image]:
    """``count`` augmented versions of one image, for a preview grid."""
    import torch

    # Seed a private copy of the random state: a training run in another thread keeps its own.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        augment = build_augmentation(names, spec, seed)
        return [augment(image.copy()) for _ in range(count)]
