"""``cnn-desktop export`` in a subprocess: INT8 export as the lite flavour runs it (no torch, no
sympy), a verified float copy of a lone ONNX file, and one clear line for every bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnn_desktop.core.models import load_bundle
from tests.int8_models import train_digits_head
from tests.processes import REPO_ROOT, run_python

CATS = {"tabby", "tiger cat", "Egyptian cat"}
# The lite flavour has neither torch (nor torchvision, timm) nor sympy: every import fails.
LITE = """
import sys
BLOCKED = ("torch", "torchvision", "timm", "sympy")
for name in BLOCKED:
    sys.modules[name] = None
from cnn_desktop.cli import main
code = main(sys.argv[1:])
assert not any(sys.modules.get(n) for n in BLOCKED)
sys.exit(code)
"""


def run_lite(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LITE, *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnn-desktop: error: "), done.stderr
    return lines[0]


def same_detector(got, expected) -> bool:
    assert expected is not None and got is not None, "the unknown detector is missing"
    return got.describe() == expected.describe() and np.array_equal(got.bank, expected.bank)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    return train_digits_head(tmp_path_factory.mktemp("trained"))


def test_int8_export_of_a_trained_model_without_torch_reports_parity(trained, tmp_path):
    _, source = trained
    out = tmp_path / "digits-int8"
    done = run_lite("export", source.path, "--out", out, "--int8", "--quiet")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == str(out) + ".cnnmodel"
    assert lines[0].startswith("Held-out images: 9 (the validation split of ")
    assert any(line.startswith("Accuracy: float ") for line in lines)
    assert any(line.startswith("Speed: INT8 ") for line in lines)
    assert any(
        line.startswith("Recipe: min-max + mean correction (accuracy budget 0.5 points: met")
        for line in lines
    ), lines
    bundle = load_bundle(lines[-1])
    assert bundle.spec.provenance["precision"] == "int8"
    assert (bundle.path / "quantization.json").is_file()


@pytest.fixture(scope="module")
def trained_with_detector(tmp_path_factory: pytest.TempPathFactory):
    """Enough validation images (42) for the unknown detector to be fitted."""
    folder = tmp_path_factory.mktemp("detector")
    data, bundle = train_digits_head(folder, per_class=70, epochs=8)
    assert bundle.unknown is not None
    return data, bundle


def test_a_float_export_keeps_the_unknown_detector(trained_with_detector, photos, tmp_path):
    data, source = trained_with_detector
    out = tmp_path / "digits-copy"
    done = run_lite("export", source.path, "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    copy = load_bundle(out.with_suffix(".cnnmodel"))
    assert copy.weights_path is not None and same_detector(copy.unknown, source.unknown)
    images = [*sorted((data / "1").iterdir())[:4], photos["coffee"]]  # four digits and a photo
    assert verdicts(copy, images) == verdicts(source, images)
    assert [unknown for _, unknown in verdicts(copy, images)] == [False] * 4 + [True]


def test_an_int8_export_fits_the_unknown_detector_to_itself(
    trained_with_detector, photos, tmp_path
):
    data, source = trained_with_detector
    out = tmp_path / "digits-int8"
    done = run_lite("export", source.path, "--out", out, "--int8", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "Unknown detector: fitted again on the INT8 model (bank of " in done.stdout
    int8 = load_bundle(out.with_suffix(".cnnmodel"))
    assert int8.unknown is not None and int8.unknown.threshold != source.unknown.threshold
    block = int8.read_json("quantization.json")["unknown_detector"]
    trained_block = source.read_json("metrics.json")["unknown"]
    assert block["fitted"] and block["validation_images"] == trained_block["validation_images"]
    images = [*sorted((data / "1").iterdir())[:4], photos["coffee"]]
    assert [label for label, _ in verdicts(int8, images)] == ["1"] * 4 + ["2"]
    assert verdicts(int8, images)[-1][1] is True  # the photo is none of the digits


def test_an_int8_export_whose_training_folder_is_gone_has_no_detector_and_says_so(
    trained_with_detector, tmp_path
):
    data, source = trained_with_detector
    calibration = shutil.copytree(data, tmp_path / "calibration")
    moved = data.rename(data.with_name("moved-away"))
    try:
        done = run_lite(
            "export", source.path, "--out", tmp_path / "q", "--int8", "--calibration", calibration
        )
    finally:
        moved.rename(data)
    assert done.returncode == 0, done.stderr
    assert "Unknown detector: none (it cannot be fitted again: the model's training folder" in (
        done.stdout
    )
    assert load_bundle(tmp_path / "q.cnnmodel").unknown is None


def verdicts(bundle, images: list[Path]) -> list[tuple[str, bool]]:
    """``(top label, unknown)`` of each image, from the lite CLI."""
    done = run_lite("classify", *images, "--model", bundle.path, "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return [(row["predictions"][0]["label"], row["unknown"]) for row in rows]


def test_the_built_in_models_int8_export_classifies_like_it(photos, tmp_path, default_bundle):
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for name in ("chelsea", "coffee", "rocket", "astronaut", "coffee_jpg"):
        shutil.copy(photos[name], calibration)
    (calibration / "truncated.jpg").write_bytes(photos["coffee_jpg"].read_bytes()[:300])
    out = tmp_path / "lite0-int8.cnnmodel"
    done = run_lite(
        "export", "--out", out, "--int8", "--calibration", calibration, "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["path"] == str(out) and result["int8"] is True
    report = result["report"]
    assert report["images"] + report["calibration_images"] == 5
    assert report["skipped_images"] == 1 and report["float_accuracy"] is None
    # Without labels the budget cannot be checked: the fastest recipe is kept, and says so.
    assert report["accuracy_budget"]["checked"] is False
    assert len(report["accuracy_budget"]["attempts"]) == 1
    assert report["quantization"]["recipe"]["correct_mean"] is True
    classified = run_lite("classify", photos["chelsea"], "--model", out, "--format", "json")
    assert classified.returncode == 0, classified.stderr
    assert json.loads(classified.stdout)["predictions"][0]["label"] in CATS


def test_a_lone_onnx_file_is_exported_as_a_verified_bundle(default_bundle, tmp_path) -> None:
    lone = tmp_path / "lite0.onnx"
    shutil.copy(default_bundle.onnx_path, lone)
    done = run_python("-m", "cnn_desktop", "export", lone, "--out", tmp_path / "copy")
    assert done.returncode == 0, done.stderr
    copy = load_bundle(done.stdout.strip())
    assert copy.path == tmp_path / "copy.cnnmodel"
    assert copy.spec == default_bundle.spec


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--int8"], "give a folder of typical images to calibrate on (--calibration DIR)"),
        (["--int8", "--calibration", "MISSING"], "does not exist"),
        (["--calibration", "PHOTOS"], "--calibration is only used with --int8"),
        (["MISSING"], "model not found"),
        (["--out", "EXISTING"], "exists; use --force to replace it"),
        (["--out", "model.onnx"], "not 'model.onnx'"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(
    args, message, tmp_path, photos, default_bundle
) -> None:
    existing = tmp_path / "existing.cnnmodel"
    shutil.copytree(default_bundle.path, existing)
    values = {
        "MISSING": str(tmp_path / "missing"),
        "PHOTOS": str(photos["chelsea"].parent),
        "EXISTING": str(existing),
        "model.onnx": str(tmp_path / "model.onnx"),
    }
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "new")]
    before = sorted(tmp_path.iterdir())
    done = run_python("-m", "cnn_desktop", "export", *[values.get(a, a) for a in args])
    assert message in one_error_line(done)
    assert sorted(tmp_path.iterdir()) == before
