"""Calibrated confidences: temperature scaling on synthetic logits, then real training runs whose
saved ONNX graph (and the PyTorch backend) give ``softmax(logits / T)``, and old bundles."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from safetensors.numpy import load_file

from cnn_desktop.core.imaging.preprocess import load_and_preprocess
from cnn_desktop.core.inference.backends import open_classifier
from cnn_desktop.core.models.bundle import SPEC_FILE, load_bundle, save_bundle
from cnn_desktop.core.models.spec import ONNX_METADATA_KEY, ModelSpec, SpecError
from cnn_desktop.core.training import calibration as calibration_module
from cnn_desktop.core.training.calibration import (
    calibrate,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
    softmax,
)
from cnn_desktop.core.training.config import TrainConfig
from cnn_desktop.core.training.embeddings import EmbeddingModel
from cnn_desktop.core.training.run import train
from tests.datasets import write_digits_dataset


def sampled_labels(true_logits: np.ndarray, seed: int) -> np.ndarray:
    """Labels drawn from ``softmax(true_logits)``: those logits are perfectly calibrated."""
    rng = np.random.default_rng(seed)
    cumulative = softmax(true_logits).cumsum(axis=1)
    draws = rng.random((len(true_logits), 1))
    return np.minimum((draws > cumulative).sum(axis=1), true_logits.shape[1] - 1)


def synthetic(count: int = 4000, classes: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (count, classes))
    return logits, sampled_labels(logits, seed + 1)


# --------------------------------------------------------------------------- the maths


def test_overconfident_logits_get_a_temperature_above_one_and_a_lower_ece() -> None:
    logits, labels = synthetic()
    overconfident = logits * 3.0
    block = calibrate(overconfident, labels)
    assert block["temperature"] > 1.5
    assert block["ece_before"] > 0.15
    assert block["ece_after"] < 0.03 < block["ece_before"]
    # Accuracy never changes: the top class of every row is the same.
    after = softmax(overconfident, block["temperature"])
    assert (after.argmax(1) == overconfident.argmax(1)).all()


@pytest.mark.parametrize("known", [0.4, 1.0, 2.5, 6.0])
def test_the_fit_recovers_a_known_temperature(known: float) -> None:
    logits, labels = synthetic(seed=3)
    assert fit_temperature(logits * known, labels) == pytest.approx(known, rel=0.06)


def test_a_small_validation_set_the_model_gets_all_right_keeps_a_moderate_temperature() -> None:
    # Six right answers, each at 95 %: the NLL alone falls without end as T shrinks, and the fit
    # would pin T to the bound (every answer 100 %). The weak prior on log T stops it.
    logits = np.log(np.array([[0.95, 0.025, 0.025]] * 6))
    labels = np.zeros(6, np.int64)
    temperature = fit_temperature(logits, labels)
    assert 0.2 < temperature < 1.0
    assert softmax(logits, temperature)[0, 0] < 0.99999


def test_no_validation_images_leave_the_temperature_at_one() -> None:
    block = calibrate(np.zeros((0, 3)), np.zeros(0, np.int64))
    assert block["temperature"] == 1.0 and block["images"] == 0 and block["ece_after"] is None


def test_reliability_bins_and_ece_by_hand() -> None:
    # Top-1 confidences 0.9, 0.9 (one right, one wrong) and 0.5 (right), two classes.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.5, 0.5]])
    labels = np.array([0, 1, 0])
    bins = reliability_bins(probabilities, labels, bins=10)
    assert [b["count"] for b in bins] == [0, 0, 0, 0, 1, 0, 0, 0, 2, 0]
    assert bins[8]["confidence"] == pytest.approx(0.9) and bins[8]["accuracy"] == 0.5
    assert bins[4]["lower"] == pytest.approx(0.4) and bins[4]["upper"] == pytest.approx(0.5)
    assert bins[0]["confidence"] is None and bins[0]["accuracy"] is None
    # ECE = 2/3 · |0.9 − 0.5| + 1/3 · |0.5 − 1|.
    assert expected_calibration_error(probabilities, labels, bins=10) == pytest.approx(
        2 / 3 * 0.4 + 1 / 3 * 0.5
    )
    assert len(calibration_module.reliability_bins(probabilities, labels)) == 15


# --------------------------------------------------------------------------- spec and bundles


def test_a_bundle_saved_before_calibration_existed_loads_with_temperature_one(
    default_bundle, tmp_path: Path
) -> None:
    spec = dataclasses.replace(default_bundle.spec, name="old")
    bundle = save_bundle(tmp_path / "old.cnnmodel", spec, default_bundle.onnx_path.read_bytes())
    # Write the spec as cnn-desktop wrote it before the field existed: no "temperature", in
    # model.json and in the ONNX metadata.
    old = {k: v for k, v in spec.to_dict().items() if k != "temperature"}
    (bundle.path / SPEC_FILE).write_text(json.dumps(old), encoding="utf-8")
    proto = onnx.load(str(bundle.onnx_path))
    for prop in proto.metadata_props:
        if prop.key == ONNX_METADATA_KEY:
            prop.value = json.dumps(old)
    onnx.save(proto, str(bundle.onnx_path))
    loaded = load_bundle(bundle.path)
    assert loaded.spec.temperature == 1.0
    assert load_bundle(bundle.onnx_path).spec.temperature == 1.0


@pytest.mark.parametrize("bad", [0.0, 0.01, 25.0, float("nan"), float("inf"), "2", True])
def test_a_spec_with_an_unusable_temperature_is_refused(bad) -> None:
    data = ModelSpec(name="m", architecture="a", class_names=("x", "y"), input_size=(32, 32))
    with pytest.raises(SpecError, match="temperature"):
        ModelSpec.from_dict({**data.to_dict(), "temperature": bad})


# --------------------------------------------------------------------------- real training


def write_split_digits(folder: Path, classes: int = 4, per_class: int = 40) -> Path:
    """Handwritten digits as train/ (60 %), val/ (20 %) and test/ (20 %) folders."""
    written = write_digits_dataset(folder / "all", per_class=per_class, classes=range(classes))
    for name, paths in written.items():
        for index, path in enumerate(paths):
            part = (
                "train"
                if index < 0.6 * len(paths)
                else "val"
                if index < 0.8 * len(paths)
                else "test"
            )
            (folder / part / name).mkdir(parents=True, exist_ok=True)
            shutil.move(path, folder / part / name / path.name)
    shutil.rmtree(folder / "all")
    return folder


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_split_digits(tmp_path_factory.mktemp("calibration-digits"))


@pytest.fixture(scope="module")
def head_run(digits: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("head-run") / "head.cnnmodel"
    last = list(train(digits, out, TrainConfig(mode="head", epochs=30, seed=0)))[-1]
    assert last.kind == "done", last.message
    return last.result


def test_head_training_records_the_calibration_in_metrics_json(head_run) -> None:
    metrics = json.loads((head_run.bundle.path / "metrics.json").read_text())
    block = metrics["calibration"]
    assert block["temperature"] == head_run.bundle.spec.temperature
    assert block["fitted_on"] == "validation" and block["images"] == 32
    assert block["ece_after"] <= block["ece_before"]
    for key in ("bins_before", "bins_after"):
        assert len(block[key]) == 15
        assert sum(b["count"] for b in block[key]) == 32
    test = block["test"]  # the held-out split, measured on the saved graph
    assert test["images"] == 32 and len(test["bins_after"]) == 15
    assert test["ece_after"] < test["ece_before"]
    assert test["accuracy"] == metrics["evaluation"]["accuracy"]
    assert metrics["export_check"]["passed"]


def _images(digits: Path, spec) -> np.ndarray:
    paths = sorted((digits / "test").rglob("*.png"))
    return np.stack([load_and_preprocess(path, spec) for path in paths])


def test_a_head_bundles_onnx_output_is_the_raw_head_divided_by_the_temperature(
    head_run, digits: Path, default_bundle
) -> None:
    bundle = head_run.bundle
    temperature = bundle.spec.temperature
    assert abs(temperature - 1.0) > 0.1  # label smoothing leaves the head underconfident
    batch = _images(digits, bundle.spec)
    weights = load_file(str(bundle.weights_path))  # the raw trained head
    embeddings = EmbeddingModel(default_bundle, "cpu")(batch)
    logits = embeddings @ weights["classifier.weight"].T + weights["classifier.bias"]
    onnx_probabilities = open_classifier(bundle, "onnx", "cpu").predict(batch)
    assert np.abs(onnx_probabilities - softmax(logits, temperature)).max() < 1e-4
    assert np.abs(onnx_probabilities - softmax(logits)).max() > 1e-2  # T makes a difference


def test_the_torch_backend_applies_the_temperature_of_a_head_bundle(head_run, digits) -> None:
    bundle = head_run.bundle
    batch = _images(digits, bundle.spec)[:6]
    expected = open_classifier(bundle, "onnx", "cpu").predict(batch)
    assert np.abs(open_classifier(bundle, "torch", "cpu").predict(batch) - expected).max() < 1e-4


def test_a_scratch_model_is_calibrated_inside_its_onnx_export(digits, tmp_path) -> None:
    import torch

    from cnn_desktop.core.inference.backends.torch import load_torch_model

    config = TrainConfig(mode="scratch", arch="lenet5", epochs=3, seed=1)
    last = list(train(digits, tmp_path / "lenet.cnnmodel", config))[-1]
    assert last.kind == "done", last.message
    bundle = load_bundle(last.result.bundle.path)
    temperature = bundle.spec.temperature
    assert temperature == last.result.metrics["calibration"]["temperature"] != 1.0
    assert last.result.metrics["export_check"]["passed"]
    batch = _images(digits, bundle.spec)
    with torch.no_grad():
        logits = load_torch_model(bundle)(torch.from_numpy(batch)).numpy()
    onnx_probabilities = open_classifier(bundle, "onnx", "cpu").predict(batch)
    assert np.abs(onnx_probabilities - softmax(logits, temperature)).max() < 1e-4
    torch_probabilities = open_classifier(bundle, "torch", "cpu").predict(batch)
    assert np.abs(torch_probabilities - onnx_probabilities).max() < 1e-4
