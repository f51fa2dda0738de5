"""Why the CNN decides, without torch: layer summary, feature maps and kernels on ONNX Runtime.

Layers are named after the torch module that produced them, read from the ONNX node scopes the
exporter writes (``/model/blocks/blocks.1/blocks.1.0/conv_pw/Conv`` → ``blocks.1.0.conv_pw
(Conv)``), so the ONNX and torch sides (:mod:`.feature_maps_torch`) agree on names.
A TF-"same" convolution frozen by :func:`cnn_desktop.core.models.export.freeze_same_padding` (a
``Sequential(ZeroPad2d, Conv2d)``) keeps the name of the module it replaced.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from cnn_desktop.core.explain.visual import ExplainError
from cnn_desktop.core.inference.backends.base import softmax
from cnn_desktop.core.inference.backends.onnx import (
    choose_providers,
    run_in_fixed_batches,
    session_options,
)
from cnn_desktop.core.inference.devices import cpu_threads
from cnn_desktop.core.models.bundle import ModelBundle

ACTIVATION_OPS = frozenset(
    {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Tanh"}
    | {"Softplus", "Gelu", "Mish", "PRelu", "ThresholdedRelu", "Celu"}
)
POOL_OPS = frozenset({"GlobalAveragePool", "GlobalMaxPool", "ReduceMean"})
_HIDDEN_OPS = frozenset({"Constant", "Identity", "Cast", "Dropout"})
_SHAPE_OPS = frozenset({"Shape", "Size"})
_FLOAT_TYPES = frozenset(
    {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
    | {onnx.TensorProto.BFLOAT16}
)
_SCOPE_ROOT = "model"


@dataclass(frozen=True)
class LayerInfo:
    """One layer of a model as the summary table shows it.

    Attributes:
        name: Unique display name, e.g. ``blocks.1.0.conv_pw (Conv)``.
        kind: The operation (``Conv``, ``Clip``, ``Gemm`` ... or a torch module class).
        output_shape: Output shape, batch first (None where the batch is dynamic).
        parameters: Number of weights the layer holds.
        is_conv: Whether the layer is a convolution.
    """

    name: str
    kind: str
    output_shape: tuple[int | None, ...]
    parameters: int
    is_conv: bool


def load_graph(bundle: ModelBundle) -> onnx.ModelProto:
    """The bundle's ONNX graph with its weights."""
    return onnx.load(str(bundle.onnx_path))


def listed_nodes(graph: onnx.GraphProto) -> list[int]:
    """Indices of the nodes worth listing: those computing on image data, not on shapes."""
    initializers = {t.name for t in graph.initializer}
    data = {i.name for i in graph.input if i.name not in initializers}
    listed = []
    for index, node in enumerate(graph.node):
        if node.op_type in _SHAPE_OPS or not any(name in data for name in node.input):
            continue
        data.update(name for name in node.output if name)
        if node.op_type not in _HIDDEN_OPS:
            listed.append(index)
    return listed


def module_path(node_name: str) -> str:
    """The dotted torch module path in an exporter scope (``''`` for the root)."""
    parts = node_name.strip("/").split("/")
    if len(parts) < 2 or parts[0] != _SCOPE_ROOT:
        return ""
    path, parent = [], _SCOPE_ROOT
    for scope in parts[1:-1]:
        prefix = parent + "."
        numbered = scope.startswith(prefix) and scope[len(prefix) :].isdigit()
        path.append(scope[len(prefix) :] if numbered else scope)
        parent = scope
    return ".".join(path)


def display_names(graph: onnx.GraphProto, indices: Sequence[int]) -> dict[int, str]:
    """Unique display names ``module.path (Op)`` for the nodes at ``indices``."""
    nodes = graph.node
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    paths = {i: module_path(nodes[i].name) for i in indices}
    for i in indices:  # Sequential(ZeroPad2d, Conv2d) from freeze_same_padding keeps its name
        node, path = nodes[i], paths[i]
        pad = producer.get(node.input[0]) if node.op_type == "Conv" and node.input else None
        if pad is not None and nodes[pad].op_type == "Pad" and path.endswith(".1"):
            parent = path[:-2]
            if module_path(nodes[pad].name) == parent + ".0":
                paths[i] = parent
                if pad in paths:
                    paths[pad] = parent
    names: dict[int, str] = {}
    seen: dict[str, int] = {}
    for i in indices:
        node = nodes[i]
        if node.name.startswith("/"):
            base = f"{paths[i]} ({node.op_type})" if paths[i] else node.op_type
        else:
            base = f"{node.name or node.output[0]} ({node.op_type})"
        seen[base] = seen.get(base, 0) + 1
        names[i] = base if seen[base] == 1 else f"{base[:-1]} #{seen[base]})"
    return names


def session_with_outputs(
    proto: onnx.ModelProto,
    outputs: Sequence[str],
    options: ort.SessionOptions,
    providers: Sequence[str],
) -> tuple[ort.InferenceSession, list[ort.OrtValue]]:
    """An ONNX Runtime session on ``proto`` with extra graph outputs.

    The weights go to ONNX Runtime as external initializers and only the small graph is
    serialised: serialising an 18 MB model holds the GIL for ~40-90 ms, which froze the
    window while feature maps were first asked for. Keep the returned values alive as long
    as the session.
    """
    lean = onnx.ModelProto(
        ir_version=proto.ir_version,
        opset_import=proto.opset_import,
        producer_name=proto.producer_name,
    )
    graph = lean.graph
    graph.name = proto.graph.name
    graph.node.extend(proto.graph.node)
    graph.input.extend(proto.graph.input)
    graph.output.extend(proto.graph.output)
    existing = {o.name for o in proto.graph.output}
    graph.output.extend(onnx.ValueInfoProto(name=n) for n in outputs if n not in existing)
    names, values = [], []
    for tensor in proto.graph.initializer:
        array = numpy_helper.to_array(tensor)
        stub = onnx.TensorProto(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
        stub.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", tensor.name), ("offset", "0"), ("length", "0")):
            entry = stub.external_data.add()
            entry.key, entry.value = key, value
        stub.external_data[2].value = str(array.nbytes)
        graph.initializer.append(stub)
        names.append(tensor.name)
        values.append(ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array)))
    options.add_external_initializers(names, values)
    session = ort.InferenceSession(lean.SerializeToString(), options, providers=list(providers))
    return session, values


def _shapes_by_running(proto: onnx.ModelProto, bundle: ModelBundle, names: list[str]) -> dict:
    """Exact output shapes from one run on a blank image (shape inference cannot see through
    the padding arithmetic of TF-'same' convolutions)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session, _values = session_with_outputs(proto, names, options, ["CPUExecutionProvider"])
    spec = bundle.spec
    blank = np.zeros((1, spec.channels, *spec.input_size), np.float32)
    outputs = session.run(names, {spec.input_name: blank})
    return {
        name: tuple(int(d) for d in out.shape) for name, out in zip(names, outputs, strict=True)
    }


def _shapes_by_inference(proto: onnx.ModelProto) -> dict:
    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {}
    for info in [*inferred.graph.value_info, *inferred.graph.output]:
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    return shapes


def onnx_model_summary(bundle: ModelBundle) -> list[LayerInfo]:
    """Every layer that computes on the image, in graph order, with shapes and weight counts.

    Shape arithmetic and constants are left out. Parameters are the floating-point
    initializers a node consumes (BatchNorm is folded into the preceding convolution).
    """
    proto = load_graph(bundle)
    graph = proto.graph
    indices = listed_nodes(graph)
    names = display_names(graph, indices)
    outputs = [graph.node[i].output[0] for i in indices]
    try:
        shapes = _shapes_by_running(proto, bundle, outputs)
    except Exception:  # ORT errors have their own types; fall back to static inference
        shapes = _shapes_by_inference(proto)
    image_input = next((i for i in graph.input if i.name == bundle.spec.input_name), graph.input[0])
    batch_dims = image_input.type.tensor_type.shape.dim
    dynamic_batch = bool(batch_dims) and not batch_dims[0].HasField("dim_value")
    weights = {t.name: t for t in graph.initializer if t.data_type in _FLOAT_TYPES}
    counted: set[str] = set()
    summary = []
    for index, output in zip(indices, outputs, strict=True):
        node = graph.node[index]
        params = 0
        for name in node.input:
            if name in weights and name not in counted:
                counted.add(name)
                params += math.prod(weights[name].dims)
        shape = tuple(shapes.get(output, ()))
        if shape and dynamic_batch:
            shape = (None, *shape[1:])
        summary.append(LayerInfo(names[index], node.op_type, shape, params, node.op_type == "Conv"))
    return summary


def _activation_after(graph: onnx.GraphProto, tensor: str) -> str:
    """The tensor after the activation (or folded BatchNorm + activation) that alone consumes
    ``tensor``; ``tensor`` itself when none does."""
    for _ in range(2):
        consumers = [n for n in graph.node if tensor in n.input]
        ops = sorted(n.op_type for n in consumers)
        if len(consumers) == 1 and consumers[0].op_type == "BatchNormalization":
            tensor = consumers[0].output[0]
            continue
        if len(consumers) == 1 and consumers[0].op_type in ACTIVATION_OPS:
            return consumers[0].output[0]
        if ops in (["Mul", "Sigmoid"], ["HardSigmoid", "Mul"]):  # x * sigmoid(x): swish
            gate = next(n for n in consumers if n.op_type != "Mul")
            mul = next(n for n in consumers if n.op_type == "Mul")
            if set(mul.input) == {tensor, gate.output[0]}:
                return mul.output[0]
        break
    return tensor


def kernels_to_rgb(weight: np.ndarray, max_kernels: int = 64) -> np.ndarray:
    """First-layer kernels ``[out, in, kh, kw]`` as ``[N, kh, kw, 3]`` uint8 tiles.

    Each kernel is scaled on its own, symmetrically: 0 is mid-grey, its largest magnitude is
    0 or 255. Three input channels show as RGB, others as grey (their mean).
    """
    weight = np.asarray(weight, dtype=np.float32)[:max_kernels]
    tiles = weight.transpose(0, 2, 3, 1)
    if tiles.shape[-1] != 3:
        tiles = np.repeat(tiles.mean(axis=-1, keepdims=True), 3, axis=-1)
    scale = np.abs(tiles).max(axis=(1, 2, 3), keepdims=True)
    scale[scale == 0] = 1.0
    return np.clip(np.rint(127.5 + 127.5 * tiles / scale), 0, 255).astype(np.uint8)


def _batch(tensor: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(tensor, dtype=np.float32)
    return array[None] if array.ndim == 3 else array


class OnnxFeatureExtractor:
    """Feature maps, first-layer kernels and probabilities of a bundle on ONNX Runtime.

    A second session runs a copy of the graph whose outputs also include every convolution's
    activation and the input of each global pool (:attr:`feature_tensors`). It is created on
    first use and shared; every method may be called from several threads at once.
    """

    def __init__(self, bundle: ModelBundle, device: str = "auto", threads: int | None = None):
        self.bundle = bundle
        self.spec = bundle.spec
        self.graph = load_graph(bundle)
        self._device = device
        self._threads = threads or cpu_threads()
        graph = self.graph.graph
        indices = listed_nodes(graph)
        names = display_names(graph, indices)
        self._conv_nodes = [i for i in indices if graph.node[i].op_type == "Conv"]
        self._taps = {
            names[i]: _activation_after(graph, graph.node[i].output[0]) for i in self._conv_nodes
        }
        pooled = [n.input[0] for n in graph.node if n.op_type in POOL_OPS and n.input]
        self.feature_tensors: tuple[str, ...] = tuple(
            dict.fromkeys([*self._taps.values(), *pooled])
        )
        self._session: ort.InferenceSession | None = None
        self._weights: list[ort.OrtValue] = []  # the session's external initializers
        self._lock = threading.Lock()

    def conv_layers(self) -> list[str]:
        """Display names of every convolution, in graph order."""
        return list(self._taps)

    def tensor_for(self, layer: str) -> str:
        """The ONNX tensor shown for a convolution layer (its activation when it has one).

        Raises:
            ExplainError: No convolution has that name.
        """
        try:
            return self._taps[layer]
        except KeyError:
            raise ExplainError(f"the model has no convolution named '{layer}'") from None

    @property
    def session(self) -> ort.InferenceSession:
        """The ONNX Runtime session with the feature tensors as extra outputs."""
        with self._lock:
            if self._session is None:
                self._session = self._create_session()
            return self._session

    def _create_session(self) -> ort.InferenceSession:
        session, self._weights = session_with_outputs(
            self.graph,
            self.feature_tensors,
            session_options(self._threads),
            choose_providers(self._device),
        )
        return session

    def run(self, tensor: np.ndarray, names: Sequence[str]) -> list[np.ndarray]:
        """Raw outputs (batch first) for ``names`` (graph outputs or :attr:`feature_tensors`)
        on one ``[C, H, W]`` image or a ``[N, C, H, W]`` batch."""
        session = self.session
        return run_in_fixed_batches(
            lambda chunk: session.run(list(names), {self.spec.input_name: chunk}),
            _batch(tensor),
            self.bundle.batch_size,
        )

    def probabilities_from_output(self, output: np.ndarray) -> np.ndarray:
        """Class probabilities from the raw graph output (softmax applied when it is logits)."""
        probs = np.asarray(output, dtype=np.float32)
        return probs if self.spec.output_is_probability else softmax(probs)

    def features_and_probabilities(
        self, tensor: np.ndarray, layers: Sequence[str]
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Feature maps ``[channels, h, w]`` of several layers and the class probabilities,
        from one run on a ``[C, H, W]`` image."""
        names = [self.tensor_for(layer) for layer in layers]
        outputs = self.run(tensor, [*dict.fromkeys(names), self.spec.output_name])
        by_name = dict(zip(dict.fromkeys(names), outputs, strict=False))
        maps = {layer: by_name[name][0] for layer, name in zip(layers, names, strict=True)}
        return maps, self.probabilities_from_output(outputs[-1])[0]

    def feature_maps(self, tensor: np.ndarray, layer: str) -> np.ndarray:
        """The activation ``[channels, h, w]`` after convolution ``layer`` for a ``[C, H, W]``
        image."""
        return self.run(tensor, [self.tensor_for(layer)])[0][0]

    def probabilities(self, tensor: np.ndarray) -> np.ndarray:
        """Class probabilities: ``[classes]`` for one image, ``[N, classes]`` for a batch."""
        probs = self.probabilities_from_output(self.run(tensor, [self.spec.output_name])[0])
        return probs[0] if np.ndim(tensor) == 3 else probs

    def kernels_rgb(self, max_kernels: int = 64) -> np.ndarray:
        """The first convolution's kernels as ``[N, kh, kw, 3]`` uint8 tiles."""
        if not self._conv_nodes:
            raise ExplainError("the model has no convolution")
        node = self.graph.graph.node[self._conv_nodes[0]]
        weights = {t.name: t for t in self.graph.graph.initializer}
        if len(node.input) < 2 or node.input[1] not in weights:
            raise ExplainError("the first convolution's weights are not stored in the model")
        return kernels_to_rgb(numpy_helper.to_array(weights[node.input[1]]), max_kernels)
