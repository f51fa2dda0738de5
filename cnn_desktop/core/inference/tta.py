"""Test-time augmentation: a model's probabilities averaged over a small fixed set of views.

The views of an image, all taken from the spec's own crop region (``crop_box``: the whole
image in ``stretch`` mode, the centre crop in ``shorter_side_center_crop`` mode), so that
each one looks like what the model was trained on:

0. ``original``: the ordinary network input (exactly ``preprocess_image``);
1. ``flip``: the original mirrored left to right;
2.–5. ``top-left``, ``top-right``, ``bottom-left``, ``bottom-right``: a crop of
   :data:`CORNER_CROP` of the region's width and height at each of its corners, resized to
   the network input (a 1.1× zoom that shifts the content by 5 % of the region each way).

The region's aspect ratio is kept, so ``stretch`` models see the same distortion as without
TTA. Probabilities (after the spec's temperature) are averaged, not logits, so the backends
need nothing new: a batch of N images is N × 6 rows of an ordinary ``predict`` call, which a
fixed-batch ONNX model runs in its own batch size (``run_in_fixed_batches``). Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from cnn_desktop.core.imaging.preprocess import PreprocessingSpec, crop_box, fit_region, to_tensor

CORNER_CROP = 0.9
"""Width and height of each corner view, as a share of the spec's crop region."""
VIEW_NAMES = ("original", "flip", "top-left", "top-right", "bottom-left", "bottom-right")
"""The views, in the order :func:`tta_views` returns them."""


def view_boxes(
    width: int, height: int, spec: PreprocessingSpec
) -> list[tuple[float, float, float, float]]:
    """The source boxes (left, top, right, bottom) of the original and the four corner views
    of a ``width``×``height`` image; the flip view uses the original's box."""
    left, top, right, bottom = crop_box(width, height, spec)
    box_w, box_h = (right - left) * CORNER_CROP, (bottom - top) * CORNER_CROP
    corners = [
        (left, top),
        (right - box_w, top),
        (left, bottom - box_h),
        (right - box_w, bottom - box_h),
    ]
    return [(left, top, right, bottom), *((x, y, x + box_w, y + box_h) for x, y in corners)]


def tta_views(image: Image.Image, spec: PreprocessingSpec) -> np.ndarray:
    """The :data:`VIEW_NAMES` views of an RGB image as normalised ``[views, C, H, W]`` input.

    View 0 is exactly ``preprocess_image``'s output, so the prediction without TTA is the model's
    output on it.
    """
    if spec.channels == 1 and image.mode != "L":
        image = image.convert("L")
    fitted = [fit_region(image, box, spec) for box in view_boxes(image.width, image.height, spec)]
    fitted.insert(1, fitted[0].transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    return np.stack([to_tensor(view, spec) for view in fitted])


def per_view_probabilities(
    predict: Callable[[np.ndarray], np.ndarray],
) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap ``predict`` (``[N, C, H, W]`` → ``[N, classes]``) to take ``[N, views, C, H, W]``
    and return each view's probabilities, ``[N, views, classes]``, in one call."""

    def run(batch: np.ndarray) -> np.ndarray:
        images, views = batch.shape[:2]
        flat = np.asarray(predict(batch.reshape(images * views, *batch.shape[2:])))
        return flat.reshape(images, views, *flat.shape[1:])

    return run


def averaged_then_plain(
    infer: Callable[[np.ndarray], np.ndarray], classes: int
) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap ``infer`` (rows of ``classes`` probabilities, maybe then more columns such as an
    unknown score) to take ``[N, views, C, H, W]``: each image's row is its views' mean
    probabilities, then the plain view's own row, so anything after the probabilities stays
    the plain image's."""
    each = per_view_probabilities(infer)

    def run(batch: np.ndarray) -> np.ndarray:
        rows = each(batch)
        return np.concatenate([rows[:, :, :classes].mean(axis=1), rows[:, 0]], axis=1)

    return run
