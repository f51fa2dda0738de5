"""Static INT8 quantization of a model's ONNX graph with ONNX Runtime's own tools.

The graph is first prepared (``quant_pre_process``: ONNX shape inference and ONNX Runtime's
basic graph optimizations; no symbolic shape inference, which needs sympy and helps only
transformers), then quantized in the QDQ format: per-channel INT8 weights, UINT8 activations
whose ranges come from min/max calibration on real images. Everything after the last
convolution (the global pool, the classifier, its softmax) stays in float: a few thousand
multiply-adds of the hundreds of millions, and the class probabilities and the class-activation
maps keep their full precision. A :class:`Recipe` says how: the calibration method, what else
stays float, and whether the features the float tail reads get their mean shift corrected
(:mod:`cnn_desktop.core.export.correction`). :data:`ACCURACY_LADDER` is what an export tries,
fastest first, until the held-out accuracy is within budget; :data:`RECIPES` is what
``benchmarks/bench_int8.py --sweep`` compares (the README has the table).

Why UINT8 activations with INT8 weights (U8S8): ONNX Runtime's x86 kernels multiply unsigned
by signed bytes (VNNI's ``vpdpbusd``), so INT8 activations are shifted to UINT8 at run time;
measured on this 2-core AVX-512 VNNI CPU with EfficientNet-Lite0, U8S8 ran 2.0-2.2x faster than
fp32 where S8S8 ran 1.75-1.9x, with the same top-1 agreement (ReLU6 activations are
non-negative, so UINT8 spends all 256 levels on them).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from cnn_desktop.core.export.correction import correct_feature_mean
from cnn_desktop.core.models.spec import LayerRef
from cnn_desktop.core.tasks import CancelToken, ProgressCallback, no_progress

CALIBRATION_BATCH = 8
_ACTIVATIONS_AFTER = frozenset({"Relu", "Clip"})


@dataclass(frozen=True)
class Recipe:
    """One way to quantize a graph: how activation ranges are found and what stays float.

    Attributes:
        name: What the recipe is called in reports and ``quantization.json``.
        calibration: ``min-max``, ``percentile`` or ``entropy`` (ONNX Runtime's calibrators).
        percentile: The percentile of each activation's values kept (``percentile`` only).
        float_convolutions: How many of the graph's last convolutions stay float, with
            everything after them (0: only the nodes after the last convolution).
        float_depthwise: Whether depthwise (grouped) convolutions stay float.
        float_first_convolutions: How many of the graph's first convolutions stay float.
        per_channel: Per-channel weight scales (else one scale per tensor).
        reduce_range: 7-bit weights (for CPUs without VNNI, whose 8-bit products can saturate).
        symmetric_activations: Activation ranges centred on zero.
        correct_mean: Whether the mean shift quantization leaves in the features the float
            tail reads is measured on the calibration images and removed (see
            :mod:`cnn_desktop.core.export.correction`).
    """

    name: str
    calibration: str = "min-max"
    percentile: float = 99.999
    float_convolutions: int = 0
    float_depthwise: bool = False
    float_first_convolutions: int = 0
    per_channel: bool = True
    reduce_range: bool = False
    symmetric_activations: bool = False
    correct_mean: bool = False

    def settings(self) -> dict[str, Any]:
        """How the graph is quantized, as recorded in the bundle's provenance and report."""
        import onnxruntime

        return {
            "tool": f"onnxruntime.quantization {onnxruntime.__version__}",
            "format": "QDQ",
            "calibration": self.calibration,
            "weights": "int8 per-channel" if self.per_channel else "int8 per-tensor",
            "activations": "uint8",
            "float_after_last_convolution": True,
            "recipe": asdict(self),
        }


FAST = Recipe("all convolutions")
MINMAX_CORRECTED = Recipe("min-max + mean correction", correct_mean=True)
EARLY_FLOAT_CORRECTED = Recipe(
    "float first 9 + mean correction", float_first_convolutions=9, correct_mean=True
)


class _Batches:
    """A ``CalibrationDataReader`` over preprocessed images, checking ``cancel`` per batch."""

    def __init__(
        self,
        images: np.ndarray,
        input_name: str,
        progress: ProgressCallback,
        cancel: CancelToken | None,
        share: float = 1.0,
        batch: int = CALIBRATION_BATCH,
    ) -> None:
        self.images, self.input_name = images, input_name
        self.progress, self.cancel, self.share, self.batch = progress, cancel, share, batch
        self.start = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        if self.start >= len(self.images):
            return None
        batch = self.images[self.start : self.start + self.batch]
        self.progress(
            self.share * self.start / len(self.images),
            f"Calibrating on {len(self.images)} images ({self.start}/{len(self.images)})…",
        )
        self.start += len(batch)
        return {self.input_name: np.ascontiguousarray(batch, np.float32)}

    def rewind(self) -> None:
        self.start = 0


def float_nodes(graph: onnx.GraphProto, recipe: Recipe = FAST) -> list[str]:
    """Names of the nodes ``recipe`` keeps in float.

    Always the nodes after the graph's last convolution (all of them when it has none), and
    with them the last ``recipe.float_convolutions`` convolutions and everything after the
    first of those; the first ``recipe.float_first_convolutions`` convolutions, and the
    depthwise ones when it says so.
    """
    convs = [i for i, node in enumerate(graph.node) if node.op_type == "Conv"]
    tail = float_tail(graph, recipe)
    chosen = [graph.node[i] for i in convs[: recipe.float_first_convolutions]]
    if recipe.float_depthwise:
        chosen += [graph.node[i] for i in convs if _groups(graph.node[i]) > 1]
    names = [node.name for node in chosen if node not in tail]
    return names + [node.name for node in tail]


def float_tail(graph: onnx.GraphProto, recipe: Recipe = FAST) -> list[onnx.NodeProto]:
    """The nodes from the first of the last ``recipe.float_convolutions`` convolutions on
    (from after the last convolution and its activation when that is 0)."""
    convs = [i for i, node in enumerate(graph.node) if node.op_type == "Conv"]
    keep = min(recipe.float_convolutions, len(convs))
    first = convs[-keep] if keep else convs[-1] + 1 if convs else 0
    tail = list(graph.node[first:])
    if not keep and convs and tail and tail[0].op_type in _ACTIVATIONS_AFTER:
        tail = tail[1:]  # the last convolution's own activation is quantized with it
    return tail


def _groups(node: onnx.NodeProto) -> int:
    return next((int(a.i) for a in node.attribute if a.name == "group"), 1)


_METHODS = {
    "min-max": lambda methods: methods.MinMax,
    "percentile": lambda methods: methods.Percentile,
    "entropy": lambda methods: methods.Entropy,
}


def _named_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with a unique name on every node (the quantizer excludes nodes by name)."""
    seen: set[str] = set()
    for number, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{number}"
        seen.add(node.name)
    return model


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantizer logs advice through the root logger; keep it out of the user's stderr."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_graph(
    onnx_path: Path,
    calibration: np.ndarray,
    input_name: str,
    recipe: Recipe = FAST,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> onnx.ModelProto:
    """The INT8 QDQ version of the ONNX graph at ``onnx_path``, calibrated on ``calibration``.

    Args:
        onnx_path: The float model.
        calibration: Preprocessed images ``[N, C, H, W]`` the activation ranges come from.
        input_name: The graph's image input.
        recipe: How to quantize it.
        progress: Told how calibration goes.
        cancel: Checked between calibration batches.

    Raises:
        Cancelled: ``cancel`` was set.
        RuntimeError: ONNX Runtime could not quantize the graph (its message).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="cnn-desktop-int8-") as work, _quiet_quantizer():
        named, prepared, quantized = (Path(work) / n for n in ("named.onnx", "pre.onnx", "q.onnx"))
        onnx.save(_named_nodes(onnx.load(str(onnx_path))), str(named))
        quant_pre_process(str(named), str(prepared), skip_symbolic_shape=True)
        float_graph = onnx.load(str(prepared))
        keep_float = float_nodes(float_graph.graph, recipe)
        quantize_static(
            str(prepared),
            str(quantized),
            # ONNX Runtime's histogram calibrators cannot merge batches of different sizes.
            _Batches(
                calibration,
                input_name,
                progress,
                cancel,
                share=0.8,
                batch=CALIBRATION_BATCH if recipe.calibration == "min-max" else 1,
            ),
            quant_format=QuantFormat.QDQ,
            per_channel=recipe.per_channel,
            reduce_range=recipe.reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=_METHODS[recipe.calibration](CalibrationMethod),
            nodes_to_exclude=keep_float,
            extra_options={
                "ActivationSymmetric": recipe.symmetric_activations,
                "CalibTensorRangeSymmetric": recipe.symmetric_activations,
                "CalibPercentile": recipe.percentile,
            },
        )
        result = onnx.load(str(quantized))
    tail = float_tail(float_graph.graph, recipe)
    if not recipe.correct_mean or not tail:
        return result
    return correct_feature_mean(
        float_graph,
        result,
        tail[0].name,
        calibration,
        input_name,
        progress=lambda fraction, message: progress(0.8 + 0.2 * fraction, message),
        cancel=cancel,
    )


def surviving_layers(
    layers: Sequence[LayerRef], before: onnx.GraphProto, after: onnx.GraphProto
) -> tuple[LayerRef, ...]:
    """The spec's layers that still exist in the quantized graph.

    Preparation fuses a convolution with the ReLU/Clip after it, so its own output vanishes;
    such a layer then points at the activation's output, which the fused node now produces.
    Layers found neither way are left out.
    """
    produced = {name for node in after.node for name in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in before.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    kept = []
    for layer in layers:
        tensor = layer.onnx_output
        following = consumers.get(tensor, [])
        if tensor not in produced and [n.op_type in _ACTIVATIONS_AFTER for n in following] == [
            True
        ]:
            tensor = following[0].output[0]
        if tensor in produced:
            kept.append(LayerRef(name=layer.name, onnx_output=tensor))
    return tuple(kept)


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        FAST,
        MINMAX_CORRECTED,
        EARLY_FLOAT_CORRECTED,
        Recipe("percentile 99.999 + mean correction", "percentile", correct_mean=True),
        Recipe("percentile 99.99 + mean correction", "percentile", 99.99, correct_mean=True),
        Recipe("float last 4 + mean correction", float_convolutions=4, correct_mean=True),
        Recipe("percentile 99.9", calibration="percentile", percentile=99.9),
        Recipe("percentile 99.99", calibration="percentile", percentile=99.99),
        Recipe("percentile 99.999", calibration="percentile"),
        Recipe("entropy", calibration="entropy"),
        Recipe("float last 1 convolution", float_convolutions=1),
        Recipe("float last 2 convolutions", float_convolutions=2),
        Recipe("float last 4 convolutions", float_convolutions=4),
        Recipe("float last 7 convolutions", float_convolutions=7),
        Recipe("float depthwise", float_depthwise=True),
        Recipe("float first convolution", float_first_convolutions=1),
        Recipe("float first 3 convolutions", float_first_convolutions=3),
        Recipe("float first 9 convolutions", float_first_convolutions=9),
        Recipe("percentile 99.99 + float first 9", "percentile", 99.99, float_first_convolutions=9),
        Recipe("per-tensor weights", per_channel=False),
        Recipe("reduce range", reduce_range=True),
        Recipe("symmetric activations", symmetric_activations=True),
    )
}
"""The recipes ``benchmarks/bench_int8.py --sweep`` compares."""

ACCURACY_LADDER: tuple[Recipe, ...] = (MINMAX_CORRECTED, EARLY_FLOAT_CORRECTED)
"""What an export tries in turn until the held-out accuracy is within budget: fastest first."""
