"""INT8 export: a real trained model quantized on its own validation split or a given folder,
opened like any bundle, agreeing with the float model, its parity report stored; bad input is
one clear error and writes nothing."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from cnn_desktop.core.export import QUANTIZATION_FILE, ExportError, export_model, report_lines
from cnn_desktop.core.export import exporter as exporter_module
from cnn_desktop.core.export.correction import correct_feature_mean
from cnn_desktop.core.export.images import export_images
from cnn_desktop.core.export.quantize import MINMAX_CORRECTED, Recipe, quantize_graph
from cnn_desktop.core.imaging import load_and_preprocess
from cnn_desktop.core.inference import OnnxClassifier
from cnn_desktop.core.models import load_bundle
from cnn_desktop.core.tasks import Cancelled, CancelToken
from tests.int8_models import train_digits_head


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """The digits folder and the head model trained on it."""
    return train_digits_head(tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def int8_export(trained, tmp_path_factory: pytest.TempPathFactory):
    """The trained model's INT8 export, calibrated on its own validation split."""
    _, bundle = trained
    return export_model(bundle, tmp_path_factory.mktemp("int8") / "digits-int8", int8=True)


def test_int8_export_of_a_trained_model_opens_and_agrees_with_float(trained, int8_export):
    data, source = trained
    bundle = load_bundle(int8_export.bundle.path)
    assert bundle.spec.name == f"{source.spec.name} (INT8)"
    assert bundle.spec.provenance["precision"] == "int8"
    assert bundle.spec.class_names == source.spec.class_names
    graph = onnx.load(str(bundle.onnx_path)).graph
    assert any(node.op_type == "QuantizeLinear" for node in graph.node)
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) > 20  # every convolution's weights, per channel
    # The float model's own images, classified by the INT8 model as by the float one.
    paths = sorted(data.glob("*/*.png"))[::5]
    batch = np.stack([load_and_preprocess(p, bundle.spec) for p in paths])
    int8_top = OnnxClassifier(bundle, "cpu").predict(batch).argmax(1)
    float_top = OnnxClassifier(source, "cpu").predict(batch).argmax(1)
    assert (int8_top == float_top).mean() >= 0.8


def test_the_parity_report_is_measured_on_held_out_validation_images_and_stored(int8_export):
    report = int8_export.report
    assert report["source"].startswith("the validation split of ")
    # 18 validation images: half calibrate, the other half are compared.
    assert report["calibration_images"] == 9 and report["images"] == 9
    assert report["top1_agreement"] >= 0.75
    assert report["float_accuracy"] is not None and report["int8_accuracy"] is not None
    assert report["int8_accuracy"] >= report["float_accuracy"] - 0.25
    speed = report["speed"]
    assert speed["batch"] == 8 and speed["threads"] == 1 and speed["int8_speedup"] > 0
    stored = json.loads((int8_export.bundle.path / QUANTIZATION_FILE).read_text())
    assert stored == report
    text = "\n".join(report_lines(report))
    assert "Top-1 agreement with float" in text and "Accuracy: float" in text
    # The first recipe of the ladder was within the accuracy budget, and says so.
    assert report["quantization"]["recipe"]["name"] == MINMAX_CORRECTED.name
    budget = report["accuracy_budget"]
    assert budget["checked"] and budget["met"] and len(budget["attempts"]) == 1
    assert f"Recipe: {MINMAX_CORRECTED.name} (accuracy budget 0.5 points: met; tried " in text


def test_an_export_over_the_accuracy_budget_falls_back_to_the_next_recipe(
    trained, tmp_path, monkeypatch
):
    _, source = trained
    # One scale per weight tensor: the depthwise convolutions' small channels round to zero.
    ruinous = Recipe("per-tensor weights", per_channel=False)
    monkeypatch.setattr(exporter_module, "ACCURACY_LADDER", (ruinous, MINMAX_CORRECTED))
    result = export_model(source, tmp_path / "int8", int8=True)
    report = result.report
    budget = report["accuracy_budget"]
    assert [a["recipe"] for a in budget["attempts"]] == [ruinous.name, MINMAX_CORRECTED.name]
    assert budget["attempts"][0]["accuracy_change_points"] < -0.5
    assert budget["met"] and report["accuracy_change_points"] >= -0.5
    assert report["quantization"]["recipe"]["name"] == MINMAX_CORRECTED.name
    provenance = load_bundle(result.bundle.path).spec.provenance
    assert provenance["quantization"]["recipe"]["name"] == MINMAX_CORRECTED.name
    assert "tried per-tensor weights -" in "\n".join(report_lines(report))


def test_the_mean_correction_gives_the_int8_features_the_float_mean(trained) -> None:
    _, source = trained
    images = export_images(source.spec, None).calibration
    name = source.spec.input_name
    uncorrected = quantize_graph(source.onnx_path, images, name, Recipe("plain"))
    corrected = quantize_graph(source.onnx_path, images, name, MINMAX_CORRECTED)
    original = onnx.load(str(source.onnx_path))
    pool = next(node for node in original.graph.node if node.op_type == "GlobalAveragePool")
    float_mean = _mean_of_input(original, pool.name, images, name)
    before = _mean_of_input(uncorrected, pool.name, images, name)
    after = _mean_of_input(corrected, pool.name, images, name)
    assert np.abs(before - float_mean).max() > 1e-3  # INT8 shifts the features
    assert np.abs(after - float_mean).max() < 1e-4  # and the correction removes the shift
    # A graph without that node is returned as it was.
    assert correct_feature_mean(original, uncorrected, "no such node", images, name) is uncorrected


def _mean_of_input(model: onnx.ModelProto, node_name: str, images, input_name: str):
    """The mean per channel of what the node ``node_name`` reads, over ``images``."""
    node = next(n for n in model.graph.node if n.name == node_name)
    model.graph.output.append(onnx.helper.make_tensor_value_info(node.input[0], 1, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run([node.input[0]], {input_name: images.astype(np.float32)})[0]
    return values.mean(axis=(0, 2, 3))


def test_a_labelled_calibration_folder_gives_accuracy_and_an_unlabelled_one_does_not(
    trained, tmp_path
):
    data, source = trained
    labelled = export_model(source, tmp_path / "labelled", int8=True, calibration=data)
    assert labelled.report["source"] == f"images in {data}"
    assert labelled.report["images"] == 45 and labelled.report["int8_accuracy"] is not None
    loose = tmp_path / "loose"
    loose.mkdir()
    for path in sorted(data.glob("*/*.png"))[::10]:
        (loose / f"{path.parent.name}-{path.name}").write_bytes(path.read_bytes())
    (loose / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    unlabelled = export_model(source, tmp_path / "unlabelled", int8=True, calibration=loose)
    assert unlabelled.report["int8_accuracy"] is None
    assert unlabelled.report["skipped_images"] == 1
    assert unlabelled.report["images"] + unlabelled.report["calibration_images"] == 9


def test_the_built_in_model_needs_a_calibration_folder(default_bundle, tmp_path) -> None:
    with pytest.raises(ExportError, match="--calibration DIR"):
        export_model(default_bundle, tmp_path / "int8", int8=True)
    assert not (tmp_path / "int8.cnnmodel").exists()


@pytest.mark.parametrize("make", ["missing", "file", "junk only"])
def test_a_bad_calibration_folder_is_one_clear_error(trained, tmp_path, make) -> None:
    _, source = trained
    folder = tmp_path / "calibration"
    if make == "file":
        folder.write_text("not a folder")
    elif make == "junk only":
        folder.mkdir()
        (folder / "a.jpg").write_bytes(b"not a jpeg")
        (folder / "notes.txt").write_text("hello")
    message = {"missing": "does not exist", "file": "is not a folder", "junk only": "0 readable"}
    with pytest.raises(ExportError, match=message[make]):
        export_model(source, tmp_path / "int8", int8=True, calibration=folder)
    assert not (tmp_path / "int8.cnnmodel").exists()


def test_an_existing_output_is_kept_unless_forced(trained, int8_export, tmp_path) -> None:
    _, source = trained
    out = tmp_path / "copy.cnnmodel"
    first = export_model(source, out)
    assert not first.int8 and first.bundle.weights_path is not None
    assert json.loads((out / "metrics.json").read_text())["training"]["mode"] == "head"
    with pytest.raises(ExportError, match="exists; use --force"):
        export_model(source, out, int8=True)
    assert load_bundle(out).spec.provenance.get("precision") is None  # untouched
    with pytest.raises(ExportError, match="is the model being exported"):
        export_model(source, source.path, force=True)
    with pytest.raises(ExportError, match="already an INT8 model"):
        export_model(int8_export.bundle, tmp_path / "twice", int8=True)
    with pytest.raises(ExportError, match=r"not 'model\.onnx'"):
        export_model(source, tmp_path / "model.onnx")
    forced = export_model(source, out, int8=True, force=True)
    assert forced.replaced and load_bundle(out).spec.provenance["precision"] == "int8"


def test_a_cancelled_export_writes_nothing(trained, tmp_path) -> None:
    _, source = trained
    cancel = CancelToken()

    def cancel_at_calibration(fraction: float, message: str) -> None:
        if message.startswith("Calibrating"):
            cancel.cancel()

    with pytest.raises(Cancelled):
        export_model(
            source, tmp_path / "int8", int8=True, progress=cancel_at_calibration, cancel=cancel
        )
    assert list(tmp_path.iterdir()) == []
