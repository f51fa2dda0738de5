"""Maps made on the model's crop land on the right pixels of the user's image.

The mapping is checked three ways: against the preprocessing itself (a dot in the image, found
in the crop, mapped back), with a hand-built model whose evidence is exactly a red square
pasted on grey, and with the built-in model and the cat photo pasted on grey. Images of
several sizes and aspect ratios, upscaled and downscaled, centre-cropped and stretched.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnn_desktop.core.explain import (
    Explainer,
    MeanMap,
    map_to_input,
    peak_in_input,
    resample_into_box,
)
from cnn_desktop.core.imaging.preprocess import crop_box, fit_image, preprocess_image
from cnn_desktop.core.inference import open_classifier
from cnn_desktop.core.models import ModelSpec, load_bundle
from tests.spot_model import SIDE, red_square_image, write_spot_model

SIZES = [(448, 448), (800, 500), (360, 640), (150, 120), (1000, 300), (40, 50)]
CATS = {"tabby", "tiger cat", "Egyptian cat"}


def _spec(resize_mode: str = "shorter_side_center_crop") -> ModelSpec:
    return ModelSpec(
        name="geometry",
        architecture="none",
        class_names=("a", "b"),
        input_size=(224, 224),
        resize_mode=resize_mode,
        interpolation="bilinear",
    )


def _object_box(size: tuple[int, int], spec, fx: float, fy: float, fraction: float):
    """A square of ``fraction`` of the crop's side inside the crop, at relative place fx, fy."""
    left, top, right, bottom = crop_box(*size, spec)
    side = fraction * min(right - left, bottom - top)
    x0, y0 = left + fx * (right - left - side), top + fy * (bottom - top - side)
    return round(x0), round(y0), round(x0 + side), round(y0 + side)


@pytest.mark.parametrize("resize_mode", ["shorter_side_center_crop", "stretch"])
@pytest.mark.parametrize("size", SIZES)
def test_a_dot_found_in_the_crop_maps_back_onto_the_dot(size, resize_mode):
    spec = _spec(resize_mode)
    left, top, right, bottom = crop_box(*size, spec)
    scale = max((right - left) / 224, (bottom - top) / 224)  # image pixels per crop pixel
    for fx, fy in [(0.2, 0.3), (0.8, 0.7), (0.5, 0.5)]:
        x, y = int(left + fx * (right - left)), int(top + fy * (bottom - top))
        image = Image.new("RGB", size, (0, 0, 0))
        radius = max(1, int(scale))
        image.paste((255, 255, 255), (x - radius + 1, y - radius + 1, x + radius, y + radius))
        crop = np.asarray(fit_image(image, spec).convert("L"), np.float32)
        heat = np.zeros_like(crop)
        heat[np.unravel_index(int(crop.argmax()), crop.shape)] = 1.0  # where the model sees it
        mapped = map_to_input(heat, spec, size)
        assert mapped.shape == (size[1], size[0]) and mapped.dtype == np.float32
        row, col = np.unravel_index(int(mapped.argmax()), mapped.shape)
        tolerance = scale + 1.5
        assert abs(col - x) <= tolerance and abs(row - y) <= tolerance
        px, py = peak_in_input(heat, spec, size)
        assert abs(px - x) <= tolerance and abs(py - y) <= tolerance


def test_resampling_is_bilinear_between_cell_centres():
    heat = np.asarray([[1.0, 0.0], [0.0, 0.0]], np.float32)
    ramp = np.asarray([1.0, 0.75, 0.25, 0.0], np.float32)  # pixel centres 0.5 .. 3.5 of 4
    np.testing.assert_allclose(resample_into_box(heat, (4, 4), (0, 0, 4, 4)), np.outer(ramp, ramp))
    shifted = resample_into_box(heat, (6, 5), (2, 1, 6, 5))  # the same box, moved
    np.testing.assert_allclose(shifted[1:, 2:], np.outer(ramp, ramp))
    assert not shifted[0].any() and not shifted[:, :2].any()
    rng = np.random.default_rng(3)
    cam = rng.random((7, 7), dtype=np.float32)
    expected = np.asarray(Image.fromarray(cam, "F").resize((224, 224), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(
        resample_into_box(cam, (224, 224), (0, 0, 224, 224)), expected, atol=1e-4
    )


@pytest.mark.parametrize("size", SIZES)
def test_pixels_the_model_never_saw_are_zero(size):
    spec = _spec()
    mapped = map_to_input(np.ones((7, 7), np.float32), spec, size)
    left, top, right, bottom = crop_box(*size, spec)
    inside = np.zeros_like(mapped, bool)
    rows, cols = np.arange(size[1]) + 0.5, np.arange(size[0]) + 0.5
    inside[np.ix_((rows >= top) & (rows < bottom), (cols >= left) & (cols < right))] = True
    assert np.all(mapped[inside] == 1.0) and np.all(mapped[~inside] == 0.0)
    if size[0] != size[1]:  # the centre crop of a non-square image leaves a margin out
        assert not inside.all()
    stretched = map_to_input(np.ones((7, 7), np.float32), _spec("stretch"), size)
    assert np.all(stretched == 1.0)


@pytest.fixture(scope="module")
def spots(tmp_path_factory):
    bundle = load_bundle(write_spot_model(tmp_path_factory.mktemp("spots")))
    return Explainer(bundle, open_classifier(bundle, "onnx", "cpu"))


@pytest.mark.parametrize("size", SIZES)
def test_the_red_square_is_where_the_peak_is(spots, size):
    spec = spots.spec
    for fx, fy in [(0, 0), (1, 0), (0, 1), (1, 1), (0.5, 0.4)]:
        box = _object_box(size, spec, fx, fy, fraction=0.2)
        tensor = preprocess_image(red_square_image(size, box), spec)
        result = spots.explain(tensor, 0)
        assert result.method == "cam" and result.heatmap.shape == (SIDE // 2, SIDE // 2)
        x, y = peak_in_input(result.heatmap, spec, size)
        assert box[0] <= x < box[2] and box[1] <= y < box[3], (box, (x, y))
        mapped = map_to_input(result.heatmap, spec, size)
        row, col = np.unravel_index(int(mapped.argmax()), mapped.shape)
        assert box[0] <= col < box[2] and box[1] <= row < box[3]


@pytest.fixture(scope="module")
def built_in(default_bundle):
    return Explainer(default_bundle, open_classifier(default_bundle, "onnx", "cpu"))


@pytest.fixture(scope="module")
def cat_photo(photos):
    with Image.open(photos["chelsea"]) as cat:
        return cat.convert("RGB")


@pytest.mark.parametrize("size", [(448, 448), (800, 500), (360, 640), (150, 120)])
def test_the_built_in_model_finds_the_cat_where_it_was_pasted(built_in, cat_photo, size):
    spec = built_in.spec
    for fx, fy in [(0, 0), (1, 0), (0, 1), (1, 1)]:
        box = _object_box(size, spec, fx, fy, fraction=0.5)
        canvas = Image.new("RGB", size, (128, 128, 128))
        canvas.paste(cat_photo.resize((box[2] - box[0], box[3] - box[1])), box[:2])
        tensor = preprocess_image(canvas, spec)
        top = int(built_in._onnx_extractor().probabilities(tensor).argmax())
        assert spec.class_names[top] in CATS
        result = built_in.explain(tensor, top)
        margin = (box[2] - box[0]) / 14  # a quarter of a CAM cell (the cat spans 3.5 cells)
        x, y = peak_in_input(result.heatmap, spec, size)
        assert box[0] - margin <= x < box[2] + margin and box[1] - margin <= y < box[3] + margin
        mapped = map_to_input(result.heatmap, spec, size)
        on_cat = np.zeros_like(mapped, bool)
        on_cat[box[1] : box[3], box[0] : box[2]] = True
        seen = map_to_input(np.ones((7, 7), np.float32), spec, size) > 0
        # The cat is a quarter of what the model saw, and holds most of the evidence.
        assert mapped[on_cat].sum() > 0.55 * mapped.sum()
        assert mapped[on_cat].mean() > 4 * mapped[seen & ~on_cat].mean()


def test_mean_map_aligns_maps_of_any_resolution_on_the_crop():
    mean = MeanMap((64, 96))
    assert mean.count == 0 and not mean.mean_heatmap().any()
    assert mean.mean_image().size == (96, 64)
    coarse = np.zeros((4, 6), np.float32)
    coarse[0, 0] = 1.0  # the top-left cell: x 0..16, y 0..16
    fine = np.zeros((64, 96), np.float32)
    fine[:16, :16] = 1.0
    fine[40:, 80:] = 0.5  # weaker evidence elsewhere, in one map only
    mean.add(coarse, Image.new("RGB", (96, 64), (200, 0, 0)))
    mean.add(fine, Image.new("RGB", (48, 32), (0, 0, 100)))  # resized to the input size
    heat = mean.mean_heatmap()
    assert heat.shape == (64, 96) and heat.max() == pytest.approx(1.0)
    x, y = mean.peak()
    assert x < 16 and y < 16
    assert heat[50, 90] == pytest.approx(0.25, abs=0.01)  # 0.5 in one of two maps, scaled
    assert mean.mean_image().getpixel((10, 10)) == (100, 0, 50)
    assert mean.count == 2
