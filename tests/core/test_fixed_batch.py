"""Foreign ONNX classifiers with a fixed batch size, and inference calls that fail: the batch
size is honoured, and a failing batch gives its images error results while the rest goes on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from cnn_desktop.core.inference.backends import open_classifier
from cnn_desktop.core.inference.predict import classify_paths, suggested_batch_size
from cnn_desktop.core.models.bundle import BundleError, load_bundle
from cnn_desktop.core.training.evaluate import evaluate_folder
from tests.cli.test_cli import run_cli


def export_fixed_batch_model(path: Path, batch: int, classes: int = 3) -> Path:
    """A real tiny torch CNN exported with input ``[batch, 3, 32, 32]`` and no dynamic axes."""
    import torch
    from torch import nn

    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes)
    ).eval()
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(batch, 3, 32, 32),),
            str(path),
            input_names=["image"],
            output_names=["scores"],
            opset_version=17,
            dynamo=False,
        )
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [batch, 3, 32, 32]
    return path


def write_batch_one_inside_model(path: Path) -> Path:
    """Declares a dynamic batch but reshapes to ``[1, 192]`` inside: any batch of more than
    one image fails in ONNX Runtime, a batch of one works."""
    weights = np.linspace(-1, 1, 192 * 2, dtype=np.float32).reshape(192, 2)
    nodes = [
        helper.make_node("Reshape", ["input", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "batch_one_inside",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [
            helper.make_tensor("shape", TensorProto.INT64, [2], [1, 192]),
            helper.make_tensor("W", TensorProto.FLOAT, [192, 2], weights.ravel().tolist()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="module")
def images(photos: dict[str, Path]) -> list[Path]:
    return [photos["chelsea"], photos["coffee"], photos["rocket"], photos["astronaut"]]


class SpyingSession:
    """Wraps an ONNX Runtime session and records the batch size of every call."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.batches: list[int] = []

    def run(self, names, feeds):
        self.batches.append(len(next(iter(feeds.values()))))
        return self.inner.run(names, feeds)


def _one_by_one(classifier, paths: list[Path]) -> list[tuple[int, ...]]:
    return [
        tuple(p.index for p in result.predictions)
        for path in paths
        for result in classify_paths([path], classifier, top_k=3, batch_size=1)
    ]


@pytest.mark.parametrize("fixed", [1, 2])
def test_fixed_batch_model_classifies_every_image_in_batches_of_its_size(
    tmp_path: Path, images: list[Path], fixed: int
) -> None:
    bundle = load_bundle(export_fixed_batch_model(tmp_path / "fixed.onnx", fixed))
    assert bundle.batch_size == fixed
    classifier = open_classifier(bundle, "onnx", "cpu")
    assert classifier.fixed_batch_size == fixed
    assert suggested_batch_size(classifier) == fixed
    expected = _one_by_one(classifier, images)
    spy = SpyingSession(classifier.session)
    classifier.session = spy

    # 3 images at a requested batch of 8 (the CPU default): split and padded to the fixed size.
    results = list(classify_paths(images[:3], classifier, top_k=3, batch_size=8))

    assert [r.error for r in results] == [None, None, None]
    assert [tuple(p.index for p in r.predictions) for r in results] == expected[:3]
    assert spy.batches and set(spy.batches) == {fixed}
    assert sum(spy.batches) == (3 + fixed - 1) // fixed * fixed


def test_dynamic_batch_model_reports_no_fixed_size(tmp_path: Path, images: list[Path]) -> None:
    path = write_batch_one_inside_model(tmp_path / "dynamic.onnx")
    bundle = load_bundle(path)
    assert bundle.batch_size is None
    assert open_classifier(bundle, "onnx", "cpu").fixed_batch_size is None


def test_input_and_output_with_different_fixed_batches_are_refused(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mismatch",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [4, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "mismatch.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(BundleError, match="batches of 2 images but returns 4 rows"):
        load_bundle(path)


def test_a_failing_inference_call_gives_its_images_errors_and_the_rest_goes_on(
    tmp_path: Path, images: list[Path]
) -> None:
    classifier = open_classifier(
        load_bundle(write_batch_one_inside_model(tmp_path / "one.onnx")), "onnx", "cpu"
    )
    # Batches of 2, 2 and 1: the two full batches fail in ONNX Runtime, the single one works.
    paths = [*images, images[0]]
    results = list(classify_paths(paths, classifier, top_k=1, batch_size=2))

    assert [r.path for r in results] == paths
    assert [r.ok for r in results] == [False, False, False, False, True]
    for result in results[:4]:
        assert result.error.startswith("inference failed: ")
        assert "\n" not in result.error
    assert results[4].predictions[0].label in ("class 0", "class 1")


def test_wrong_number_of_output_rows_is_an_error_per_image(images: list[Path]) -> None:
    from cnn_desktop.core.inference.predict import run_on_paths
    from cnn_desktop.core.models.spec import ModelSpec

    spec = ModelSpec(name="x", architecture="unknown", class_names=("a", "b"), input_size=(8, 8))
    rows = list(
        run_on_paths(
            images[:3], spec, lambda batch: np.zeros((1, 2), np.float32), batch_size=3, workers=1
        )
    )
    assert [r.error for r in rows] == [
        "inference failed: the model returned 1 rows for 3 images"
    ] * 3


def test_evaluate_on_a_fixed_batch_model_scores_every_image(
    tmp_path: Path, images: list[Path]
) -> None:
    import shutil

    classifier = open_classifier(
        load_bundle(export_fixed_batch_model(tmp_path / "fixed.onnx", 1)), "onnx", "cpu"
    )
    data = tmp_path / "data"
    for index, image in enumerate(images):
        folder = data / f"class {index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, folder / image.name)

    evaluation = evaluate_folder(classifier, data)

    assert evaluation.errors == []
    assert evaluation.count == len(images)


# --------------------------------------------------------------------------- the real CLI


def test_cli_classify_and_evaluate_a_fixed_batch_model(tmp_path: Path, images: list[Path]) -> None:
    import json
    import shutil

    model = export_fixed_batch_model(tmp_path / "fixed.onnx", 1)
    result = run_cli("classify", *images[:3], "--model", model, "--format", "json", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(p) for p in images[:3]]
    assert all(len(r["predictions"]) == 3 for r in records)

    data = tmp_path / "data"
    for index, image in enumerate(images[:3]):
        (data / f"class {index}").mkdir(parents=True)
        shutil.copy(image, data / f"class {index}" / image.name)
    result = run_cli("evaluate", model, data, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == []
    assert sum(map(sum, report["confusion_matrix"])) == 3


def test_cli_classify_reports_a_failing_batch_per_image_and_goes_on(
    tmp_path: Path, images: list[Path]
) -> None:
    model = write_batch_one_inside_model(tmp_path / "one.onnx")
    result = run_cli("classify", *images[:3], "--model", model, "--batch-size", "2", "--quiet")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout.count("error: inference failed:") == 2
    assert "class " in result.stdout.split(str(images[2]))[1]  # the third image was classified
    assert "2 of 3 could not be classified" in result.stderr


@pytest.mark.parametrize("batch", [1, 2])
def test_feature_maps_and_occlusion_cam_honour_a_fixed_batch(tmp_path: Path, batch: int) -> None:
    from cnn_desktop.core.explain.cam import occlusion_map
    from cnn_desktop.core.explain.feature_maps import OnnxFeatureExtractor

    bundle = load_bundle(export_fixed_batch_model(tmp_path / "fixed.onnx", batch))
    extractor = OnnxFeatureExtractor(bundle, "cpu")
    image = np.random.default_rng(0).normal(size=(3, 32, 32)).astype(np.float32)
    layer = extractor.conv_layers()[0]
    assert extractor.feature_maps(image, layer).shape == (4, 30, 30)
    single = extractor.probabilities(image)
    assert single.shape == (3,)
    # Occlusion runs 4² + 1 images in batches of 5: every one must fit the fixed size.
    result = occlusion_map(extractor, image, 1, grid=4, batch_size=5)
    assert result.heatmap.shape == (4, 4)
    assert np.isfinite(result.heatmap).all()
    assert result.probability == pytest.approx(float(single[1]), abs=1e-6)
