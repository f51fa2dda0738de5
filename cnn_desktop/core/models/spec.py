"""ModelSpec: everything needed to use a model besides its weights.

The spec travels as ``model.json`` in a bundle and inside the ONNX ``metadata_props`` under
:data:`ONNX_METADATA_KEY`, so a lone ``.onnx`` file is self-describing. Preprocessing is
derived from the spec for every backend.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from cnn_desktop.core.imaging.pixels import BIT_DEPTH_POLICIES, BIT_DEPTH_POLICY

FORMAT_VERSION = 1
ONNX_METADATA_KEY = "cnn_desktop.spec"
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")
RESIZE_MODES = ("shorter_side_center_crop", "stretch")
TEMPERATURE_RANGE = (0.05, 20.0)  # calibration temperatures a spec may carry

MAX_CLASSES = 100_000
MAX_INPUT_SIDE = 4096
MAX_LAYERS = 10_000
MAX_SPEC_BYTES = 64 * 1024**2
MAX_NESTING = 64
# Pixels are scaled to [0, 1]; a mean or std far outside these bounds only makes inf or NaN.
MEAN_LIMIT, STD_RANGE = 1e3, (1e-6, 1e3)
# The image is resized to input / crop_fraction before the centre crop.
MIN_CROP_FRACTION = 0.25
_SCHEMA_ERRORS_WEIGHED = 50
_MESSAGE_CHARS = 200

_MEAN = {"type": "number", "minimum": -MEAN_LIMIT, "maximum": MEAN_LIMIT}
_STD = {"type": "number", "minimum": STD_RANGE[0], "maximum": STD_RANGE[1]}
_NUMBER_LIST = {"type": "array", "items": _MEAN, "minItems": 1, "maxItems": 4}
_NAME = {"type": "string", "minLength": 1, "maxLength": 1000}

SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "format_version",
        "name",
        "architecture",
        "class_names",
        "input_size",
        "channels",
        "mean",
        "std",
    ],
    "properties": {
        "format_version": {"type": "integer", "minimum": 1},
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "architecture": {"type": "string", "minLength": 1, "maxLength": 100},
        "class_names": {
            "type": "array",
            "items": {"type": "string", "maxLength": 500},
            "minItems": 1,
            "maxItems": MAX_CLASSES,
        },
        "input_size": {
            "type": "array",
            "items": {"type": "integer", "minimum": 8, "maximum": MAX_INPUT_SIDE},
            "minItems": 2,
            "maxItems": 2,
        },
        "channels": {"enum": [1, 3]},
        "mean": _NUMBER_LIST,
        "std": {**_NUMBER_LIST, "items": _STD},
        "interpolation": {"enum": list(INTERPOLATIONS)},
        "resize_mode": {"enum": list(RESIZE_MODES)},
        "crop_fraction": {"type": "number", "minimum": MIN_CROP_FRACTION, "maximum": 1},
        "input_name": _NAME,
        "output_name": _NAME,
        "output_is_probability": {"type": "boolean"},
        "bit_depth_policy": {"enum": list(BIT_DEPTH_POLICIES)},
        "temperature": {
            "type": "number",
            "minimum": TEMPERATURE_RANGE[0],
            "maximum": TEMPERATURE_RANGE[1],
        },
        "layers": {
            "type": "array",
            "maxItems": MAX_LAYERS,
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "maxLength": 1000},
                    "onnx_output": {"type": "string", "maxLength": 1000},
                },
            },
        },
        "provenance": {"type": "object"},
    },
}


class SpecError(ValueError):
    """A model spec is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class LayerRef:
    """A layer worth visualising: its torch module path and its ONNX output tensor."""

    name: str
    onnx_output: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """How to feed a model and read its output.

    Attributes:
        name: Human-readable model name.
        architecture: Name in the architecture registry (``cnn_desktop.core.models.zoo``).
        class_names: One label per output, in output order.
        input_size: (height, width) of the network input.
        channels: 3 for RGB, 1 for grayscale.
        mean: Per-channel mean subtracted from pixels scaled to [0, 1].
        std: Per-channel standard deviation pixels are divided by.
        interpolation: Resampling filter for the resize.
        resize_mode: ``shorter_side_center_crop`` (resize the shorter side to
            ``input / crop_fraction`` then centre-crop) or ``stretch`` (resize to the input).
        crop_fraction: Fraction of the resized image kept by the centre crop.
        input_name: ONNX input tensor name.
        output_name: ONNX output tensor name.
        output_is_probability: Whether the output already sums to one (else softmax is
            applied to it as logits).
        bit_depth_policy: How images deeper than 8 bits (and float images) were turned into
            8-bit pixels for this model (``"min-max"``: stretched from the range their pixels
            use; see ``cnn_desktop.core.imaging.pixels``). Specs written before the field
            existed load with the default.
        temperature: The calibration temperature T fitted on the validation images: the
            calibrated probabilities are ``softmax(logits / T)``. A cnn-desktop ONNX graph
            already applies it (its output is calibrated); the PyTorch backend, which runs the
            raw trained weights, divides their logits by it. Specs written before the field
            existed load with 1 (no change).
        layers: Layers worth visualising, earliest first.
        provenance: Where the model came from (source, training, software versions).
    """

    name: str
    architecture: str
    class_names: tuple[str, ...]
    input_size: tuple[int, int]
    channels: int = 3
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    interpolation: str = "bicubic"
    resize_mode: str = "shorter_side_center_crop"
    crop_fraction: float = 0.875
    input_name: str = "input"
    output_name: str = "probabilities"
    output_is_probability: bool = True
    bit_depth_policy: str = BIT_DEPTH_POLICY
    temperature: float = 1.0
    layers: tuple[LayerRef, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def num_classes(self) -> int:
        """Number of classes the model predicts."""
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-compatible data."""
        data = asdict(self)
        data["class_names"] = list(self.class_names)
        data["input_size"] = list(self.input_size)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        data["layers"] = [asdict(layer) for layer in self.layers]
        return data

    def to_json(self) -> str:
        """The spec as a JSON document."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        """Validate plain data and build a spec.

        Raises:
            SpecError: The data does not follow the schema or is inconsistent.
        """
        _check_sizes(data)
        # The first errors only: a list of a hundred thousand wrong items is not weighed whole.
        errors = _VALIDATOR.iter_errors(data)
        error = best_match(itertools.islice(errors, _SCHEMA_ERRORS_WEIGHED))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "spec"
            raise SpecError(f"invalid model spec at '{where}': {_shortened(error.message)}")
        if data["format_version"] > FORMAT_VERSION:
            raise SpecError(
                f"model spec format {data['format_version']} is newer than this cnn-desktop "
                f"reads ({FORMAT_VERSION}); update cnn-desktop"
            )
        channels = data["channels"]
        for key in ("mean", "std"):
            if not all(math.isfinite(v) for v in data[key]):
                raise SpecError(f"model spec '{key}' has a value that is not a finite number")
            if len(data[key]) != channels:
                raise SpecError(
                    f"model spec '{key}' has {len(data[key])} values for {channels} channels"
                )
        crop = data.get("crop_fraction", cls.crop_fraction)
        widest = max(data["input_size"]) / crop
        if data.get("resize_mode") != "stretch" and widest > 2 * MAX_INPUT_SIDE:
            raise SpecError(
                f"model spec 'crop_fraction' {crop} would resize images to "
                f"{widest:.0f} pixels before the crop (at most {2 * MAX_INPUT_SIDE})"
            )
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["class_names"] = tuple(data["class_names"])
        kwargs["input_size"] = (int(data["input_size"][0]), int(data["input_size"][1]))
        kwargs["mean"] = tuple(float(v) for v in data["mean"])
        kwargs["std"] = tuple(float(v) for v in data["std"])
        kwargs["layers"] = tuple(
            LayerRef(name=layer["name"], onnx_output=layer.get("onnx_output", ""))
            for layer in data.get("layers", [])
        )
        kwargs["temperature"] = float(data.get("temperature", 1.0))
        if not math.isfinite(kwargs["temperature"]):  # NaN passes the schema's range checks
            raise SpecError("model spec 'temperature' is not a finite number")
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        """Parse and validate a JSON document.

        Raises:
            SpecError: The text is not JSON or not a valid spec.
        """
        if len(text) > MAX_SPEC_BYTES:
            raise SpecError(
                f"model spec is {len(text) / 1e6:.0f} MB, more than {MAX_SPEC_BYTES // 1024**2} MB"
            )
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"model spec is not valid JSON: {_shortened(str(exc))}") from None
        except RecursionError:
            raise SpecError("model spec is nested too deeply") from None
        return cls.from_dict(data)


_VALIDATOR = jsonschema.Draft202012Validator(SPEC_SCHEMA)
_LIST_LIMITS = {"class_names": MAX_CLASSES, "layers": MAX_LAYERS, "mean": 4, "std": 4}


def _check_sizes(data: Any) -> None:
    """Refuse, before the schema walks them, lists over their limit and deep nesting.

    Raises:
        SpecError: A list is too long or the provenance is nested too deeply.
    """
    if not isinstance(data, dict):
        return  # the schema says what it is instead
    for key, limit in _LIST_LIMITS.items():
        value = data.get(key)
        if isinstance(value, list) and len(value) > limit:
            raise SpecError(
                f"invalid model spec at '{key}': {len(value):,} items, more than {limit:,}"
            )
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_NESTING:
            raise SpecError(f"model spec is nested more than {MAX_NESTING} levels deep")
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, (dict, list)):
            pending.extend((child, depth + 1) for child in children)


def _shortened(message: str) -> str:
    """One line of at most about 200 characters (a message may quote a huge value)."""
    line = " ".join(message.split())
    return line if len(line) <= _MESSAGE_CHARS else line[: _MESSAGE_CHARS - 1] + "…"
