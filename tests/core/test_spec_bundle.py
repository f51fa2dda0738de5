"""Model specs and bundles: JSON round-trips, atomic saves, and loads that refuse bad files."""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from cnn_desktop.core.inference.backends import BackendError, open_classifier
from cnn_desktop.core.models import bundle as bundle_module
from cnn_desktop.core.models.bundle import (
    ONNX_FILE,
    SPEC_FILE,
    WEIGHTS_FILE,
    BundleError,
    ModelBundle,
    load_bundle,
    save_bundle,
)
from cnn_desktop.core.models.spec import ONNX_METADATA_KEY, LayerRef, ModelSpec, SpecError

TINY_SPEC = ModelSpec(
    name="tiny", architecture="unknown", class_names=("a", "b", "c"), input_size=(32, 32)
)

CLASSIFIER_SPEC = ModelSpec(
    name="classifier",
    architecture="unknown",
    class_names=("x", "y"),
    input_size=(8, 8),
    input_name="input",
    output_name="logits",
    output_is_probability=False,
)
"""The spec of :func:`_classifier_onnx`'s graph."""

# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def tiny_export() -> tuple[bytes, ModelSpec, dict[str, np.ndarray]]:
    """A tiny real torch classifier exported by cnn-desktop: (ONNX bytes, spec, weights)."""
    import torch
    from torch import nn

    from cnn_desktop.core.models.export import export_onnx

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )
    proto, spec = export_onnx(model, TINY_SPEC, layers=["0"])
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return proto.SerializeToString(), spec, weights


def _save_tiny(
    tiny_export: tuple[bytes, ModelSpec, dict[str, np.ndarray]], path: Path, **changes: object
) -> ModelBundle:
    onnx_bytes, spec, weights = tiny_export
    return save_bundle(path, dataclasses.replace(spec, **changes), onnx_bytes, weights=weights)


def _leftovers(folder: Path) -> list[str]:
    """Temporary folders a save may have left next to the bundle."""
    return [p.name for p in folder.iterdir() if ".saving-" in p.name or ".previous-" in p.name]


def _classifier_onnx(external: TensorProto | None = None) -> onnx.ModelProto:
    """[N,3,8,8] -> GlobalAveragePool -> Flatten -> MatMul(W[3,2]) -> [N,2], W given."""
    if external is None:
        external = helper.make_tensor("W", TensorProto.FLOAT, [3, 2], [0.1] * 6)
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [external],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _external_tensor(location: str) -> TensorProto:
    tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[3, 2])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "24")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


class _CreatesFileWhenUnpickled:
    """Unpickling this runs ``open(marker, 'w')``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


# --------------------------------------------------------------------------- ModelSpec


def test_spec_json_round_trip_keeps_every_field() -> None:
    spec = ModelSpec(
        name="Pflanzen – Blätter 🌿",
        architecture="tf_efficientnet_lite0",
        class_names=("healthy", "rust", "mildew"),
        input_size=(240, 320),
        channels=1,
        mean=(0.25,),
        std=(0.75,),
        interpolation="lanczos",
        resize_mode="stretch",
        crop_fraction=0.9,
        input_name="pixels",
        output_name="scores",
        output_is_probability=False,
        layers=(LayerRef("conv_stem", "/model/conv_stem/Conv_output_0"), LayerRef("blocks.0")),
        provenance={"source": "training", "epochs": 5, "nested": {"lr": 0.001}},
    )
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert ModelSpec.from_dict(json.loads(spec.to_json())) == spec
    assert ModelSpec.from_json(spec.to_json().encode("utf-8")) == spec


_MISSING = object()


def _spec_data(**changes: object) -> dict[str, object]:
    data = TINY_SPEC.to_dict()
    for key, value in changes.items():
        if value is _MISSING:
            del data[key]
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"class_names": _MISSING}, "class_names"),
        ({"class_names": []}, "class_names"),
        ({"mean": [0.5]}, "'mean' has 1 values for 3 channels"),
        ({"std": [0.5, 0.5]}, "'std' has 2 values for 3 channels"),
        ({"std": [0.5, 0.0, 0.5]}, "std"),
        ({"input_size": [-32, 32]}, "input_size"),
        ({"input_size": [32]}, "input_size"),
        ({"channels": 2}, "channels"),
        ({"resize_mode": "squash"}, "resize_mode"),
        ({"crop_fraction": 1.5}, "crop_fraction"),
        ({"format_version": 2}, "newer than this cnn-desktop"),
        ({"name": ""}, "name"),
    ],
)
def test_spec_errors_name_the_field(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        ModelSpec.from_dict(_spec_data(**changes))
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_spec_that_is_not_json_or_not_an_object_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="not valid JSON"):
        ModelSpec.from_json("{name: tiny")
    with pytest.raises(SpecError, match="not of type 'object'"):
        ModelSpec.from_json("[1, 2, 3]")


def test_bundle_whose_spec_layer_has_an_extra_key_still_opens(tmp_path: Path, tiny_export) -> None:
    """A newer cnn-desktop may describe layers with more keys; this one keeps what it knows."""
    saved = _save_tiny(tiny_export, tmp_path / "model")
    data = json.loads((saved.path / SPEC_FILE).read_text(encoding="utf-8"))
    data["layers"] = [{"name": "0", "onnx_output": "x", "note": "written by a newer app"}]
    (saved.path / SPEC_FILE).write_text(json.dumps(data), encoding="utf-8")
    layers = load_bundle(saved.path).spec.layers
    assert [(layer.name, layer.onnx_output) for layer in layers] == [("0", "x")]


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_spec_with_non_finite_std_is_refused(value: str) -> None:
    text = TINY_SPEC.to_json().replace('"std": [\n    0.5,', f'"std": [\n    {value},')
    assert value in text
    with pytest.raises(SpecError):
        ModelSpec.from_json(text)


# --------------------------------------------------------------------------- save / load


def test_save_then_load_round_trip(tmp_path: Path, tiny_export) -> None:
    _, spec, weights = tiny_export
    saved = _save_tiny(tiny_export, tmp_path / "tiny")

    assert saved.path == tmp_path / "tiny.cnnmodel"
    for name in (ONNX_FILE, SPEC_FILE, WEIGHTS_FILE):
        assert (saved.path / name).is_file(), name
    loaded = load_bundle(saved.path)
    assert loaded.spec == spec
    assert loaded.spec.class_names == ("a", "b", "c")
    assert loaded.weights_path == saved.path / WEIGHTS_FILE

    from safetensors.numpy import load_file

    stored = load_file(str(loaded.weights_path))
    assert stored.keys() == weights.keys()
    for key, value in weights.items():
        np.testing.assert_array_equal(stored[key], value)

    # The spec travels inside the ONNX file too.
    proto = onnx.load(str(loaded.onnx_path))
    embedded = {p.key: p.value for p in proto.metadata_props}
    assert ModelSpec.from_json(embedded[ONNX_METADATA_KEY]) == spec

    lone = tmp_path / "elsewhere" / "exported.onnx"
    lone.parent.mkdir()
    shutil.copyfile(loaded.onnx_path, lone)
    alone = load_bundle(lone)
    assert alone.spec == spec
    assert alone.spec.class_names == ("a", "b", "c")
    assert alone.weights_path is None
    assert alone.onnx_path == lone


def test_saved_bundle_classifies_like_the_torch_model(tmp_path: Path, tiny_export) -> None:
    import torch
    from torch import nn

    _, _, weights = tiny_export
    bundle = _save_tiny(tiny_export, tmp_path / "tiny")
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    batch = np.random.default_rng(1).normal(size=(5, 3, 32, 32)).astype(np.float32)
    expected = model(torch.from_numpy(batch)).softmax(-1).detach().numpy()

    probabilities = open_classifier(bundle, "onnx", "cpu").predict(batch)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_export_locates_layers_of_a_sequential_model(tiny_export) -> None:
    _, spec, _ = tiny_export
    assert [layer.name for layer in spec.layers] == ["0"]
    assert spec.layers[0].onnx_output.endswith("Conv_output_0")


def test_export_locates_layers_of_a_nested_model() -> None:
    import torch
    from torch import nn

    from cnn_desktop.core.models.export import export_onnx

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
            self.head = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(x).mean((2, 3)))

    proto, spec = export_onnx(Net(), TINY_SPEC, layers=["features.0", "features", "missing"])
    located = {layer.name: layer.onnx_output for layer in spec.layers}
    assert located.keys() == {"features.0", "features"}
    assert located["features.0"].endswith("Conv_output_0")
    assert located["features"].endswith("Relu_output_0")
    outputs = {out for node in proto.graph.node for out in node.output}
    assert set(located.values()) <= outputs
    assert spec.output_is_probability is True


def test_extra_json_files_are_saved_and_read_back(tmp_path: Path, tiny_export) -> None:
    onnx_bytes, spec, _ = tiny_export
    history = {"epochs": [1, 2], "accuracy": [0.5, 0.75]}
    saved = save_bundle(tmp_path / "m", spec, onnx_bytes, extra_json={"history.json": history})
    assert saved.weights_path is None
    assert load_bundle(saved.path).read_json("history.json") == history
    assert saved.read_json("metrics.json") is None


def test_saving_over_an_existing_bundle_replaces_it(tmp_path: Path, tiny_export) -> None:
    _save_tiny(tiny_export, tmp_path / "model")
    _save_tiny(tiny_export, tmp_path / "model", name="tiny v2", class_names=("x", "y", "z"))

    loaded = load_bundle(tmp_path / "model.cnnmodel")
    assert loaded.name == "tiny v2"
    assert loaded.spec.class_names == ("x", "y", "z")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.cnnmodel"]


def test_save_failing_midway_keeps_the_previous_bundle(
    tmp_path: Path, tiny_export, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _save_tiny(tiny_export, tmp_path / "model")
    before = {p.name: p.read_bytes() for p in first.path.iterdir()}

    real_write = bundle_module._write_file
    calls = []

    def write_then_fail(path: Path, data: bytes) -> None:
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(bundle_module, "_write_file", write_then_fail)
    with pytest.raises(BundleError, match=r"^no space left on device while saving model\.cnnmodel"):
        _save_tiny(tiny_export, tmp_path / "model", name="tiny v2", class_names=("x", "y", "z"))
    assert len(calls) == 2

    after = {p.name: p.read_bytes() for p in first.path.iterdir()}
    assert after == before
    assert load_bundle(first.path).spec == first.spec
    assert _leftovers(tmp_path) == []


def test_save_with_unsavable_weights_keeps_the_previous_bundle(tmp_path: Path, tiny_export) -> None:
    onnx_bytes, spec, _ = tiny_export
    first = _save_tiny(tiny_export, tmp_path / "model")
    before = {p.name: p.read_bytes() for p in first.path.iterdir()}

    bad_weights = {"w": np.array([object(), object()], dtype=object)}
    with pytest.raises(BundleError, match=r"^could not save model to .*weights could not be"):
        save_bundle(tmp_path / "model", spec, onnx_bytes, weights=bad_weights)

    assert {p.name: p.read_bytes() for p in first.path.iterdir()} == before
    assert load_bundle(first.path).spec == first.spec
    assert _leftovers(tmp_path) == []


def test_save_with_unsavable_weights_raises_bundle_error(tmp_path: Path, tiny_export) -> None:
    onnx_bytes, spec, _ = tiny_export
    bad_weights = {"w": np.array([object()], dtype=object)}
    with pytest.raises(BundleError, match=r"^could not save model to .*weights could not be"):
        save_bundle(tmp_path / "model", spec, onnx_bytes, weights=bad_weights)


def test_save_refuses_to_replace_a_file(tmp_path: Path, tiny_export) -> None:
    onnx_bytes, spec, _ = tiny_export
    occupied = tmp_path / "model.cnnmodel"
    occupied.write_text("my notes")
    with pytest.raises(BundleError, match="not a model bundle folder"):
        save_bundle(occupied, spec, onnx_bytes)
    assert occupied.read_text() == "my notes"


# --------------------------------------------------------------------------- load validation


def test_bundle_without_model_json_is_refused(tmp_path: Path, tiny_export) -> None:
    saved = _save_tiny(tiny_export, tmp_path / "model")
    (saved.path / SPEC_FILE).unlink()
    with pytest.raises(BundleError, match=r"not a complete model bundle: model\.json is missing"):
        load_bundle(saved.path)


def test_bundle_without_model_onnx_is_refused(tmp_path: Path, tiny_export) -> None:
    saved = _save_tiny(tiny_export, tmp_path / "model")
    (saved.path / ONNX_FILE).unlink()
    with pytest.raises(BundleError, match=r"model\.onnx is missing"):
        load_bundle(saved.path)


def test_model_json_that_is_not_json_is_refused(tmp_path: Path, tiny_export) -> None:
    saved = _save_tiny(tiny_export, tmp_path / "model")
    (saved.path / SPEC_FILE).write_text("{ this is not json", encoding="utf-8")
    with pytest.raises(BundleError, match=r"model\.json: model spec is not valid JSON"):
        load_bundle(saved.path)


def test_model_json_breaking_the_schema_is_refused(tmp_path: Path, tiny_export) -> None:
    saved = _save_tiny(tiny_export, tmp_path / "model")
    data = json.loads((saved.path / SPEC_FILE).read_text(encoding="utf-8"))
    data["input_size"] = [-1, 32]
    (saved.path / SPEC_FILE).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BundleError, match="input_size"):
        load_bundle(saved.path)


def test_class_count_different_from_onnx_output_is_refused(tmp_path: Path, tiny_export) -> None:
    saved = _save_tiny(tiny_export, tmp_path / "model")
    data = json.loads((saved.path / SPEC_FILE).read_text(encoding="utf-8"))
    data["class_names"] = ["a", "b"]
    (saved.path / SPEC_FILE).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BundleError, match="predicts 3 classes but its spec names 2"):
        load_bundle(saved.path)


def test_input_size_different_from_onnx_input_is_refused(tmp_path: Path, tiny_export) -> None:
    saved = _save_tiny(tiny_export, tmp_path / "model")
    data = json.loads((saved.path / SPEC_FILE).read_text(encoding="utf-8"))
    data["input_size"] = [64, 64]
    (saved.path / SPEC_FILE).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BundleError, match="expects input"):
        load_bundle(saved.path)


def test_onnx_of_random_bytes_is_refused(tmp_path: Path, tiny_export) -> None:
    garbage = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    lone = tmp_path / "random.onnx"
    lone.write_bytes(garbage)
    with pytest.raises(BundleError, match=r"random\.onnx is not a valid ONNX model"):
        load_bundle(lone)

    saved = _save_tiny(tiny_export, tmp_path / "model")
    (saved.path / ONNX_FILE).write_bytes(garbage)
    with pytest.raises(BundleError, match=r"model\.onnx is not a valid ONNX model"):
        load_bundle(saved.path)


def test_empty_onnx_is_refused(tmp_path: Path, tiny_export) -> None:
    lone = tmp_path / "empty.onnx"
    lone.write_bytes(b"")
    with pytest.raises(BundleError, match=r"empty\.onnx is empty"):
        load_bundle(lone)

    saved = _save_tiny(tiny_export, tmp_path / "model")
    (saved.path / ONNX_FILE).write_bytes(b"")
    with pytest.raises(BundleError, match=r"model\.onnx is empty"):
        load_bundle(saved.path)


def test_onnx_external_data_outside_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "downloads" / "models"
    folder.mkdir(parents=True)
    evil = folder / "evil.onnx"
    evil.write_bytes(_classifier_onnx(_external_tensor("../../etc/passwd")).SerializeToString())
    with pytest.raises(BundleError, match="outside the model folder"):
        load_bundle(evil)

    absolute = folder / "absolute.onnx"
    absolute.write_bytes(_classifier_onnx(_external_tensor("/etc/passwd")).SerializeToString())
    with pytest.raises(BundleError, match="outside"):
        load_bundle(absolute)

    bundle_dir = tmp_path / "evil.cnnmodel"
    bundle_dir.mkdir()
    (bundle_dir / ONNX_FILE).write_bytes(evil.read_bytes())
    spec = dataclasses.replace(CLASSIFIER_SPEC, name="evil")
    (bundle_dir / SPEC_FILE).write_text(spec.to_json(), encoding="utf-8")
    with pytest.raises(BundleError, match="outside"):
        load_bundle(bundle_dir)


def test_onnx_external_data_inside_the_folder_loads_and_runs(tmp_path: Path) -> None:
    weights = np.arange(6, dtype=np.float32).reshape(3, 2)
    tensor = helper.make_tensor("W", TensorProto.FLOAT, [3, 2], weights.tobytes(), raw=True)
    model = _classifier_onnx(tensor)
    path = tmp_path / "split.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="split.weights", size_threshold=0
    )
    assert (tmp_path / "split.weights").is_file()

    loaded = load_bundle(path)
    assert loaded.spec.class_names == ("class 0", "class 1")
    batch = np.ones((1, 3, 8, 8), np.float32)
    probabilities = open_classifier(loaded, "onnx", "cpu").predict(batch)
    logits = np.ones(3, np.float32) @ weights
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(probabilities[0], expected, rtol=1e-5)

    (tmp_path / "split.weights").unlink()
    with pytest.raises(BundleError, match=r"external weights file 'split\.weights' is missing"):
        load_bundle(path)


def test_paths_that_are_not_models_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="model not found"):
        load_bundle(tmp_path / "nowhere.cnnmodel")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(BundleError, match=r"notes\.txt is not a model"):
        load_bundle(notes)


def test_garbage_safetensors_is_refused(tmp_path: Path, tiny_export) -> None:
    saved = _save_tiny(tiny_export, tmp_path / "model")
    (saved.path / WEIGHTS_FILE).write_bytes(b"\xff" * 64)
    with pytest.raises(BundleError, match=r"weights\.safetensors is not a valid safetensors"):
        load_bundle(saved.path)

    (saved.path / WEIGHTS_FILE).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(BundleError, match="not a valid safetensors"):
        load_bundle(saved.path)


def test_pickled_weights_in_a_bundle_are_never_loaded(tmp_path: Path, default_bundle) -> None:
    marker = tmp_path / "pickle-was-executed"
    # The trick works: unpickling this payload does create a file.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_CreatesFileWhenUnpickled(probe))).close()
    assert probe.exists()

    folder = tmp_path / "hostile.cnnmodel"
    shutil.copytree(default_bundle.path, folder)
    (folder / "weights.pth").write_bytes(pickle.dumps(_CreatesFileWhenUnpickled(marker)))
    (folder / "model.pt").write_bytes(pickle.dumps(_CreatesFileWhenUnpickled(marker)))

    hostile = load_bundle(folder)
    batch = np.zeros((1, 3, 224, 224), np.float32)
    for backend in ("onnx", "torch"):
        probabilities = open_classifier(hostile, backend, "cpu").predict(batch)
        assert probabilities.shape == (1, 1000)
    assert not marker.exists()

    # Without safetensors the torch backend refuses rather than fall back to the pickle.
    (folder / WEIGHTS_FILE).unlink()
    no_weights = load_bundle(folder)
    assert no_weights.weights_path is None
    with pytest.raises(BackendError, match=r"no weights\.safetensors"):
        open_classifier(no_weights, "torch", "cpu")
    open_classifier(no_weights, "onnx", "cpu").predict(batch)
    assert not marker.exists()


# --------------------------------------------------------------------------- foreign ONNX


def test_foreign_onnx_without_spec_gets_an_inferred_spec(tmp_path: Path) -> None:
    import torch
    from torch import nn

    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)
    ).eval()
    path = tmp_path / "someone_elses_model.onnx"
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 40, 48),),
            str(path),
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    assert not any(p.key == ONNX_METADATA_KEY for p in onnx.load(str(path)).metadata_props)

    loaded = load_bundle(path)
    spec = loaded.spec
    assert spec.name == "someone_elses_model"
    assert spec.class_names == tuple(f"class {i}" for i in range(5))
    assert spec.input_size == (40, 48)
    assert spec.channels == 3
    assert (spec.input_name, spec.output_name) == ("pixels", "logits")
    assert spec.output_is_probability is False

    batch = np.random.default_rng(2).normal(size=(4, 3, 40, 48)).astype(np.float32)
    probabilities = open_classifier(loaded, "onnx", "cpu").predict(batch)
    assert probabilities.shape == (4, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).softmax(-1).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_foreign_onnx_that_is_not_an_image_classifier_is_refused(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "not_images",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "tabular.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(BundleError, match=r"needs \[batch, 1 or 3, H, W\]"):
        load_bundle(path)
