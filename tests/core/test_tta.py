"""Test-time augmentation: which pixels each view shows, that averaging is what is reported,
and that batches (fixed-batch ONNX models too) give one result per image, in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_desktop.core.imaging.preprocess import crop_box, preprocess_image
from cnn_desktop.core.inference import open_classifier
from cnn_desktop.core.inference.predict import classify_paths
from cnn_desktop.core.inference.tta import CORNER_CROP, VIEW_NAMES, tta_views, view_boxes
from cnn_desktop.core.models import ModelSpec, load_bundle
from cnn_desktop.core.training.evaluate import evaluate_folder
from tests.spot_model import GREY, red_square_image, write_spot_model

SIZES = [(800, 500), (360, 640), (224, 224), (90, 60)]
OUT = 112


def _spec(resize_mode: str) -> ModelSpec:
    return ModelSpec(
        name="tta",
        architecture="none",
        class_names=("a", "b"),
        input_size=(OUT, OUT),
        resize_mode=resize_mode,
        interpolation="bilinear",
    )


def _brightest(view: np.ndarray) -> tuple[float, float]:
    """(x, y) of the centre of the bright pixels of a ``[C, H, W]`` view."""
    grey = view.mean(axis=0)
    ys, xs = np.nonzero(grey > grey.min() + 0.5 * (grey.max() - grey.min()))
    return float(xs.mean()), float(ys.mean())


@pytest.fixture(scope="module")
def spots(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("spots")
    return open_classifier(load_bundle(write_spot_model(folder)), "onnx", "cpu")


@pytest.mark.parametrize("resize_mode", ["shorter_side_center_crop", "stretch"])
@pytest.mark.parametrize("size", SIZES)
def test_each_view_shows_a_dot_where_its_box_puts_it(size, resize_mode) -> None:
    spec = _spec(resize_mode)
    left, top, right, bottom = crop_box(*size, spec)
    region_w, region_h = right - left, bottom - top
    x = left + 0.47 * region_w  # inside every corner crop: they overlap in the middle 80 %
    y = top + 0.52 * region_h
    radius = max(2, round(0.03 * min(region_w, region_h)))
    image = Image.new("RGB", size, (0, 0, 0))
    image.paste(
        (255, 255, 255),
        (round(x) - radius, round(y) - radius, round(x) + radius, round(y) + radius),
    )

    views = tta_views(image, spec)

    assert views.shape == (len(VIEW_NAMES), 3, OUT, OUT)
    np.testing.assert_array_equal(views[0], preprocess_image(image, spec))
    expected = {}
    boxes = dict(zip(["original", *VIEW_NAMES[2:]], view_boxes(*size, spec), strict=True))
    for name, (b_left, b_top, b_right, b_bottom) in boxes.items():
        expected[name] = (
            (x - b_left) / (b_right - b_left) * OUT - 0.5,
            (y - b_top) / (b_bottom - b_top) * OUT - 0.5,
        )
    expected["flip"] = (OUT - 1 - expected["original"][0], expected["original"][1])
    for name, view in zip(VIEW_NAMES, views, strict=True):
        found = _brightest(view)
        assert found == pytest.approx(expected[name], abs=1.5), name
    # The corner crops are CORNER_CROP of the region, at its corners.
    top_left, top_right, bottom_left, bottom_right = boxes["top-left"], *list(boxes.values())[2:]
    assert top_left[:2] == pytest.approx((left, top))
    assert bottom_right[2:] == pytest.approx((right, bottom))
    assert (top_right[2], top_right[1]) == pytest.approx((right, top))
    assert (bottom_left[0], bottom_left[3]) == pytest.approx((left, bottom))
    for box in boxes.values():
        if box != (left, top, right, bottom):
            assert box[2] - box[0] == pytest.approx(CORNER_CROP * region_w)
            assert box[3] - box[1] == pytest.approx(CORNER_CROP * region_h)


@pytest.mark.parametrize("size", [(800, 500), (360, 640)])
def test_centre_crop_views_show_nothing_outside_the_crop_region(size) -> None:
    spec = _spec("shorter_side_center_crop")
    image = Image.new("RGB", size, (255, 255, 255))
    left, top, right, bottom = crop_box(*size, spec)
    image.paste((0, 0, 0), (int(left) - 2, int(top) - 2, round(right) + 2, round(bottom) + 2))

    views = tta_views(image, spec)

    assert views.max() == pytest.approx(-1.0)  # all black: (0 / 255 - 0.5) / 0.5


def test_a_mirror_symmetric_image_gives_mirrored_views(photos: dict[str, Path]) -> None:
    half = Image.open(photos["chelsea"]).convert("RGB").resize((200, 300))
    image = Image.new("RGB", (400, 300))
    image.paste(half, (0, 0))
    image.paste(half.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (200, 0))
    spec = _spec("shorter_side_center_crop")

    original, flip, top_left, top_right, bottom_left, bottom_right = tta_views(image, spec)

    level = 2 / 255 / 0.5  # two grey levels
    np.testing.assert_allclose(flip, original, atol=level)
    np.testing.assert_allclose(top_right, top_left[:, :, ::-1], atol=level)
    np.testing.assert_allclose(bottom_right, bottom_left[:, :, ::-1], atol=level)
    assert not np.allclose(top_left, original, atol=10 * level)  # the crops do move


def test_reported_probabilities_are_the_average_over_the_views(spots, tmp_path: Path) -> None:
    # A red square in the top-left corner: the views that crop it away see less red.
    path = tmp_path / "corner.png"
    red_square_image((64, 64), (2, 2, 10, 10), path)
    views = tta_views(Image.open(path).convert("RGB"), spots.spec)
    each = spots.predict(views)

    (with_tta,) = classify_paths([path], spots, top_k=2, tta=True)
    (without,) = classify_paths([path], spots, top_k=2)

    reported = {p.label: p.confidence for p in with_tta.predictions}
    mean = each.mean(axis=0)
    assert reported == pytest.approx({"red": mean[0], "plain": mean[1]}, abs=1e-6)
    assert {p.label: p.confidence for p in without.predictions}["red"] == pytest.approx(
        each[0, 0], abs=1e-6
    )
    assert without.predictions[0].label == "red" and with_tta.predictions[0].label == "plain"


def _squares(folder: Path) -> list[Path]:
    places = [(2, 2), (20, 20), (50, 50), (30, 10), (10, 40)]
    paths = [folder / f"square_{x}_{y}.png" for x, y in places]
    for path, (x, y) in zip(paths, places, strict=True):
        red_square_image((64, 64), (x, y, x + 8, y + 8), path)
    return paths


def _one_by_one(classifier, paths: list[Path]) -> list[dict[str, float]]:
    return [
        {p.label: p.confidence for p in result.predictions}
        for path in paths
        for result in classify_paths([path], classifier, top_k=2, batch_size=1, tta=True)
    ]


def test_a_batch_of_images_gives_one_result_per_image_in_order(spots, tmp_path: Path) -> None:
    paths = _squares(tmp_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    expected = _one_by_one(spots, paths)

    results = list(
        classify_paths([*paths[:2], broken, *paths[2:]], spots, top_k=2, batch_size=2, tta=True)
    )

    assert [r.path for r in results] == [*paths[:2], broken, *paths[2:]]
    assert results[2].error is not None
    got = [{p.label: p.confidence for p in r.predictions} for r in results if r.ok]
    for one, alone in zip(got, expected, strict=True):
        assert one == pytest.approx(alone, abs=1e-6)


@pytest.mark.parametrize("fixed", [1, 4])
def test_fixed_batch_onnx_models_work_with_tta(photos: dict[str, Path], tmp_path, fixed) -> None:
    from tests.core.test_fixed_batch import SpyingSession, export_fixed_batch_model

    classifier = open_classifier(
        load_bundle(export_fixed_batch_model(tmp_path / "fixed.onnx", fixed)), "onnx", "cpu"
    )
    paths = [photos[name] for name in ("chelsea", "coffee", "rocket")]
    expected = _one_by_one(classifier, paths)
    spy = SpyingSession(classifier.session)
    classifier.session = spy

    results = list(classify_paths(paths, classifier, top_k=2, tta=True))

    assert [r.error for r in results] == [None, None, None]
    for result, alone in zip(results, expected, strict=True):
        assert {p.label: p.confidence for p in result.predictions} == pytest.approx(alone, abs=1e-5)
    assert set(spy.batches) == {fixed}
    assert sum(spy.batches) >= 3 * len(VIEW_NAMES)


def test_evaluate_reports_accuracy_with_and_without_tta(spots, tmp_path: Path) -> None:
    # Each 8-px square is "red" to the plain input; TTA turns the corner one (2, 2) into
    # "plain" (three corner crops lose it). Labelled "plain", TTA fixes it; the rest stay right.
    data = tmp_path / "data"
    red = _squares(data / "red")
    corner = data / "plain" / "corner.png"
    corner.parent.mkdir(parents=True)
    red[0].rename(corner)
    Image.new("RGB", (64, 64), GREY).save(data / "plain" / "grey.png")

    with_tta = evaluate_folder(spots, data, tta=True)
    without = evaluate_folder(spots, data)

    assert without.accuracy == pytest.approx(5 / 6)
    assert with_tta.accuracy == pytest.approx(1.0)
    assert with_tta.tta == {
        "views": list(VIEW_NAMES),
        "accuracy": 1.0,
        "accuracy_without_tta": pytest.approx(without.accuracy, abs=1e-6),
        "fixed": 1,
        "broke": 0,
    }
    assert with_tta.to_dict()["tta"]["fixed"] == 1 and "tta" not in without.to_dict()
    assert "83.33% without it, +16.67 points with it" in with_tta.table()
