"""Odd but real situations around training, scanning and evaluating."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from cnn_desktop.core.inference.backends import open_classifier
from cnn_desktop.core.models.export import export_onnx
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.models.zoo import build_model
from cnn_desktop.core.training.config import TrainConfig, TrainError
from cnn_desktop.core.training.dataset import DatasetError, scan_folder
from cnn_desktop.core.training.evaluate import evaluate_folder
from cnn_desktop.core.training.run import train
from tests.datasets import write_digits_dataset


@pytest.mark.parametrize(("size", "channels"), [(32, 1), (16, 3), (40, 1)])
def test_lenet_exports_at_sizes_where_adaptive_pooling_does_not_divide(size, channels) -> None:
    import onnxruntime as ort
    import torch

    model = build_model("lenet5", 4, channels, (size, size)).eval()
    spec = ModelSpec(
        name="t",
        architecture="lenet5",
        class_names=("a", "b", "c", "d"),
        input_size=(size, size),
        channels=channels,
        mean=(0.5,) * channels,
        std=(0.5,) * channels,
    )
    proto, _ = export_onnx(model, spec, [])
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).normal(size=(3, channels, size, size)).astype(np.float32)
    onnx_probs = session.run(None, {"input": batch})[0]
    with torch.no_grad():
        torch_probs = model(torch.from_numpy(batch)).softmax(-1).numpy()
    assert np.abs(onnx_probs - torch_probs).max() < 1e-5


def test_a_bundle_saved_inside_the_data_folder_is_not_a_class(tmp_path: Path) -> None:
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=6, classes=range(2))
    (data / "model.cnnmodel").mkdir()
    (data / "model.cnnmodel" / "model.onnx").write_bytes(b"x")
    report = scan_folder(data)
    assert report.classes == ("0", "1")
    assert any("model bundle" in reason for _, reason in report.skipped)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_named_like_an_image_does_not_hang_evaluation(tmp_path: Path, onnx_classifier):
    data = tmp_path / "eval"
    write_digits_dataset(data, per_class=3, classes=range(2))
    os.mkfifo(data / "0" / "pipe.png")
    result: list = []
    worker = threading.Thread(
        target=lambda: result.append(evaluate_folder(onnx_classifier, data)), daemon=True
    )
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "evaluation blocked on a pipe"
    errors = [e for e in result[0].errors if e["path"].endswith("pipe.png")]
    assert errors and "not a regular file" in errors[0]["error"]


def test_evaluating_an_empty_val_split_is_an_error_not_zero_accuracy(tmp_path, onnx_classifier):
    data = tmp_path / "split"
    write_digits_dataset(data / "train", per_class=3, classes=range(2))
    (data / "val" / "0").mkdir(parents=True)
    (data / "val" / "1").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images in val"):
        evaluate_folder(onnx_classifier, data)


def test_head_mode_with_an_empty_val_split_still_trains(tmp_path: Path) -> None:
    data = tmp_path / "split"
    write_digits_dataset(data / "train", per_class=4, classes=range(2))
    for name in ("0", "1"):
        (data / "val" / name).mkdir(parents=True)
    events = list(train(data, tmp_path / "head", TrainConfig(mode="head", epochs=3)))
    assert events[-1].kind == "done"


def test_output_path_that_is_a_file_is_refused_before_training(tmp_path: Path) -> None:
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=4, classes=range(2))
    blocker = tmp_path / "taken.cnnmodel"
    blocker.write_text("not a model")
    with pytest.raises(TrainError, match="not a model bundle folder"):
        next(train(data, blocker, TrainConfig(mode="scratch", arch="lenet5")))
    with pytest.raises(TrainError, match="not a model name"):
        next(train(data, Path("."), TrainConfig(mode="scratch", arch="lenet5")))
    assert blocker.read_text() == "not a model"


def test_trained_model_classifies_through_the_normal_path(tmp_path: Path) -> None:
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=20, classes=range(2))
    last = list(train(data, tmp_path / "m", TrainConfig(mode="scratch", arch="lenet5", epochs=4)))[
        -1
    ]
    classifier = open_classifier(last.result.bundle, "onnx", "cpu")
    evaluation = evaluate_folder(classifier, data)
    assert evaluation.count == 40


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lr": math.nan}, "learning rate must be a positive number, not nan"),
        ({"lr": math.inf}, "learning rate must be a positive number, not inf"),
        ({"lr": -0.1}, "learning rate must be a positive number"),
        ({"seed": -1}, "seed must be a whole number from 0 to 4294967295, not -1"),
        ({"seed": 2**32}, "seed must be a whole number"),
    ],
)
def test_code_calling_the_core_gets_the_same_option_checks_as_the_cli(options, message) -> None:
    with pytest.raises(TrainError, match=message):
        TrainConfig(**options).resolved()
