"""Deep and float images: one bit depth policy for display, training and inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from cnn_desktop.core.imaging import BIT_DEPTH_POLICY, load_image
from cnn_desktop.core.inference import classify_paths
from cnn_desktop.core.models.spec import ModelSpec, SpecError


def grey_cat() -> np.ndarray:
    """The test cat as 8-bit grey values (they span 4..194, not the full 0..255)."""
    return np.asarray(Image.fromarray(data.chelsea()).convert("L")).astype(np.float64)


def write_bit_depth_variants(folder: Path) -> dict[str, Path]:
    """The same grey photo as 8-bit, 12-bit-in-16, narrow-range 16-bit and float32 files."""
    grey = grey_cat()
    bits12 = np.rint(grey * 4095 / 255).astype(np.uint16)
    narrow = np.rint(1000 + grey * 2000 / 255).astype(np.uint16)
    images = {
        "8-bit.png": Image.fromarray(grey.astype(np.uint8), "L"),
        "12-bit-in-16.png": Image.fromarray(bits12),
        "12-bit-in-16.tif": Image.fromarray(bits12),
        "narrow-16.tif": Image.fromarray(narrow),
        "float-unit.tif": Image.fromarray((grey / 255).astype(np.float32), "F"),
        "float-wide.tif": Image.fromarray((grey * 40 - 3000).astype(np.float32), "F"),
    }
    paths = {}
    for name, image in images.items():
        paths[name] = folder / name
        image.save(paths[name])
    return paths


def test_the_variants_really_are_deep_images(tmp_path: Path) -> None:
    paths = write_bit_depth_variants(tmp_path)
    for name in ("12-bit-in-16.png", "12-bit-in-16.tif", "narrow-16.tif"):
        with Image.open(paths[name]) as image:
            assert image.mode.startswith("I"), name
            assert np.asarray(image).max() < 4096
    with Image.open(paths["float-unit.tif"]) as image:
        assert image.mode == "F"


def test_same_photo_at_every_bit_depth_gets_the_same_top1(tmp_path: Path, onnx_classifier) -> None:
    paths = write_bit_depth_variants(tmp_path)
    results = {r.path.name: r for r in classify_paths(list(paths.values()), onnx_classifier)}
    reference = results["8-bit.png"].predictions[0]
    assert reference.label in {"Egyptian cat", "tabby", "tiger cat"}
    for name, result in results.items():
        assert result.ok, (name, result.error)
        top = result.predictions[0]
        assert top.label == reference.label, name
        assert abs(top.confidence - reference.confidence) <= 0.05, (name, top, reference)


def test_deep_integer_images_are_stretched_from_the_range_they_use(tmp_path: Path) -> None:
    Image.fromarray(np.array([[1000, 2000, 3000]], dtype=np.uint16)).save(tmp_path / "n.tif")
    assert np.asarray(load_image(tmp_path / "n.tif"))[0, :, 0].tolist() == [0, 128, 255]
    Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16)).save(tmp_path / "white.png")
    assert (np.asarray(load_image(tmp_path / "white.png")) == 255).all()


def test_float_images_outside_0_to_1_are_stretched_and_nan_is_the_minimum(tmp_path: Path) -> None:
    values = np.array([[-5.0, 5.0, 15.0, np.nan]], dtype=np.float32)
    Image.fromarray(values, "F").save(tmp_path / "f.tif")
    assert np.asarray(load_image(tmp_path / "f.tif"))[0, :, 0].tolist() == [0, 128, 255, 0]


def test_spec_records_the_policy_and_old_specs_get_the_default() -> None:
    spec = ModelSpec(name="m", architecture="a", class_names=("x",), input_size=(32, 32))
    data_ = json.loads(spec.to_json())
    assert data_["bit_depth_policy"] == BIT_DEPTH_POLICY == "min-max"
    assert ModelSpec.from_dict(data_) == spec
    del data_["bit_depth_policy"]
    assert ModelSpec.from_dict(data_).bit_depth_policy == BIT_DEPTH_POLICY
    data_["bit_depth_policy"] = "divide-by-257"
    with pytest.raises(SpecError, match="bit_depth_policy"):
        ModelSpec.from_dict(data_)


def _tiny_onnx(spec_json: str) -> bytes:
    """[N,3,16,16] -> GlobalAveragePool -> Flatten -> [N,3], with ``spec_json`` as metadata."""
    from onnx import TensorProto, helper

    from cnn_desktop.core.models.spec import ONNX_METADATA_KEY

    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["probabilities"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, spec_json
    return model.SerializeToString()


def test_onnx_metadata_round_trips_the_policy_and_old_metadata_gets_the_default(
    tmp_path: Path,
) -> None:
    from cnn_desktop.core.models import load_bundle

    spec = ModelSpec(name="m", architecture="a", class_names=("x", "y", "z"), input_size=(16, 16))
    written = spec.to_dict()
    assert written["bit_depth_policy"] == BIT_DEPTH_POLICY
    (tmp_path / "new.onnx").write_bytes(_tiny_onnx(json.dumps(written)))
    assert load_bundle(tmp_path / "new.onnx").spec.bit_depth_policy == BIT_DEPTH_POLICY
    del written["bit_depth_policy"]
    (tmp_path / "old.onnx").write_bytes(_tiny_onnx(json.dumps(written)))
    assert load_bundle(tmp_path / "old.onnx").spec == spec
