"""`classify --tta` and `evaluate --tta` in a subprocess, with the hand-built red-spot model:
an 8-px red square in the image's top-left corner is "red" to the plain input, and "plain"
once the probabilities are averaged over the views (three corner crops lose the square)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from cnn_desktop.core.inference import open_classifier
from cnn_desktop.core.inference.tta import VIEW_NAMES, tta_views
from cnn_desktop.core.models import load_bundle
from tests.cli.test_cli import run_cli
from tests.spot_model import GREY, red_square_image, write_spot_model


@pytest.fixture(scope="module")
def spot_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The model, and a labelled folder: the corner square filed as ``plain`` (TTA fixes it),
    a centred square as ``red`` and a grey image as ``plain``."""
    folder = tmp_path_factory.mktemp("tta-cli")
    model = write_spot_model(folder)
    data = folder / "data"
    red_square_image((64, 64), (2, 2, 10, 10), data / "plain" / "corner.png")
    red_square_image((64, 64), (28, 28, 36, 36), data / "red" / "centre.png")
    Image.new("RGB", (64, 64), GREY).save(data / "plain" / "grey.png")
    return model, data


def test_classify_tta_reports_the_probabilities_averaged_over_the_views(spot_data) -> None:
    model, data = spot_data
    corner = data / "plain" / "corner.png"

    with_tta = run_cli("classify", corner, "--model", model, "--tta", "--format", "json")
    without = run_cli("classify", corner, "--model", model, "--format", "json")

    assert with_tta.returncode == 0, with_tta.stderr
    assert without.returncode == 0, without.stderr
    averaged = json.loads(with_tta.stdout)["predictions"]
    plain = json.loads(without.stdout)["predictions"]
    assert (averaged[0]["label"], plain[0]["label"]) == ("plain", "red")
    classifier = open_classifier(load_bundle(model), "onnx", "cpu")
    mean = classifier.predict(tta_views(Image.open(corner).convert("RGB"), classifier.spec))
    expected = dict(zip(("red", "plain"), mean.mean(axis=0), strict=True))
    assert {p["label"]: p["confidence"] for p in averaged} == pytest.approx(expected, abs=1e-5)


def test_evaluate_tta_reports_accuracy_with_and_without_it(spot_data) -> None:
    model, data = spot_data

    report = run_cli("evaluate", model, data, "--tta", "--format", "json")
    table = run_cli("evaluate", model, data, "--tta")
    plain = run_cli("evaluate", model, data, "--format", "json")

    assert report.returncode == 0, report.stderr
    evaluation = json.loads(report.stdout)
    assert evaluation["accuracy"] == 1.0
    assert evaluation["tta"] == {
        "views": list(VIEW_NAMES),
        "accuracy": 1.0,
        "accuracy_without_tta": pytest.approx(2 / 3, abs=1e-6),
        "fixed": 1,
        "broke": 0,
    }
    assert json.loads(plain.stdout)["accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    assert "tta" not in json.loads(plain.stdout)
    assert table.returncode == 0, table.stderr
    assert "Accuracy: 100.00% (3 of 3 images)" in table.stdout
    assert (
        "Test-time augmentation (6 views averaged): 66.67% without it, +33.33 points with it "
        "(predictions fixed: 1, broken: 0)"
    ) in table.stdout
