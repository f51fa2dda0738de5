"""Mean evidence maps per class: what a model looks at across all images of one class.

Every image's map covers the model's crop of that image, so the maps of a class line up on the
crop (pixel (x, y) of the network input) whatever the images' own sizes; their mean, next to
the mean of the crops themselves, shows a shortcut at a glance ("it looks at the snow, not the
wolf"). Pure numpy: no torch, no model.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from cnn_desktop.core.explain.cam import normalise_heatmap
from cnn_desktop.core.explain.geometry import peak_in_box, resample_into_box


class MeanMap:
    """A running mean of heatmaps and of the crops they were made on, for one class.

    Memory stays that of one crop however many images are added.
    """

    def __init__(self, input_size: tuple[int, int]) -> None:
        """Args:
        input_size: ``(height, width)`` of the network input, the grid every map is put on.
        """
        self.height, self.width = input_size
        self.count = 0
        self._heat = np.zeros((self.height, self.width), np.float64)
        self._pixels = np.zeros((self.height, self.width, 3), np.float64)

    def add(self, heatmap: np.ndarray, crop: Image.Image) -> None:
        """Add one image: its map of the network input (any resolution, 0..1) and the crop
        the network saw (resized to the input size if it is not)."""
        size = (self.width, self.height)
        self._heat += resample_into_box(
            heatmap, size, (0.0, 0.0, float(self.width), float(self.height))
        )
        rgb = crop.convert("RGB")
        if rgb.size != size:
            rgb = rgb.resize(size, Image.Resampling.BILINEAR)
        self._pixels += np.asarray(rgb, np.float64)
        self.count += 1

    def mean_heatmap(self) -> np.ndarray:
        """The mean map ``[height, width]`` float32, scaled so its strongest pixel is 1 (all 0
        before any image is added)."""
        if self.count == 0:
            return np.zeros((self.height, self.width), np.float32)
        return normalise_heatmap(self._heat / self.count)

    def mean_image(self) -> Image.Image:
        """The mean of the crops, an RGB image of the input size (grey before any image)."""
        if self.count == 0:
            return Image.new("RGB", (self.width, self.height), (128, 128, 128))
        mean = np.clip(np.rint(self._pixels / self.count), 0, 255).astype(np.uint8)
        return Image.fromarray(mean, "RGB")

    def peak(self) -> tuple[int, int]:
        """Where the mean map is strongest, in network-input pixels ``(x, y)``."""
        box = (0.0, 0.0, float(self.width), float(self.height))
        return peak_in_box(self.mean_heatmap(), box)
