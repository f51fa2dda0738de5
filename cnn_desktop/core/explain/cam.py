"""Class activation maps: where in the image the evidence for a class lies.

On ONNX Runtime no gradients are available, so :func:`class_activation_map` uses the classic CAM
of Zhou et al. (2016) when the network ends in global average pooling and one linear layer (the
map is then exact: the class score is the mean of the map plus a bias), and occlusion
sensitivity otherwise. :func:`grad_cam` (Selvaraju et al., 2017) runs on a torch model; torch is
imported only inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import numpy_helper

from cnn_desktop.core.explain.feature_maps import (
    ExplainError,
    OnnxFeatureExtractor,
    display_names,
    listed_nodes,
)
from cnn_desktop.core.tasks import CancelToken

if TYPE_CHECKING:
    from torch import nn

CLASSIC_CAM = "cam"
OCCLUSION = "occlusion"
GRAD_CAM = "grad-cam"
_PASS_THROUGH = frozenset({"Flatten", "Reshape", "Squeeze", "Identity", "Dropout"})
_AFTER_CLASSIFIER = frozenset({"Softmax", "LogSoftmax", "Identity"})


@dataclass(frozen=True)
class CamResult:
    """A class activation map.

    Attributes:
        heatmap: ``[h, w]`` float32 in 0..1 (1 where the evidence is strongest).
        method: ``"cam"`` (classic CAM), ``"occlusion"`` or ``"grad-cam"``.
        class_index: The class explained.
        probability: The model's probability for that class on the unmodified image.
        layer: The layer whose activations the map is made of (empty for occlusion).
    """

    heatmap: np.ndarray
    method: str
    class_index: int
    probability: float
    layer: str = ""


@dataclass(frozen=True)
class CamHead:
    """The end of a network that allows classic CAM.

    Attributes:
        features: The tensor ``[N, K, h, w]`` that is globally average-pooled.
        weights: The classifier weights ``[classes, K]``.
    """

    features: str
    weights: np.ndarray


def normalise_heatmap(values: np.ndarray) -> np.ndarray:
    """Negative evidence cut to 0, the rest scaled so the maximum is 1 (all 0 if none)."""
    heat = np.maximum(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0)
    peak = float(heat.max()) if heat.size else 0.0
    return heat / peak if peak > 0 else np.zeros_like(heat)


def _constant(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for tensor in graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(onnx.helper.get_attribute_value(node.attribute[0]))
    return None


def _has_constant_input(graph: onnx.GraphProto, node: onnx.NodeProto, tensor: str) -> bool:
    others = [name for name in node.input if name != tensor]
    return len(others) == 1 and _constant(graph, others[0]) is not None


def _is_global_average(graph: onnx.GraphProto, node: onnx.NodeProto) -> bool:
    if node.op_type == "GlobalAveragePool":
        return True
    if node.op_type != "ReduceMean":
        return False
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1:
        axes = _constant(graph, node.input[1])
    return axes is not None and sorted(int(a) for a in np.ravel(axes)) in ([2, 3], [-2, -1])


def find_cam_head(proto: onnx.ModelProto, output_name: str) -> CamHead | None:
    """The pooled features and classifier weights if the graph ends global average pool
    (→ Flatten/Reshape) → Gemm or MatMul (+ Add) (→ Softmax) → ``output_name``; else None."""
    graph = proto.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_consumer(tensor: str) -> onnx.NodeProto | None:
        found = consumers.get(tensor, [])
        return found[0] if len(found) == 1 else None

    for pool in graph.node:
        if not _is_global_average(graph, pool):
            continue
        tensor, node = pool.output[0], only_consumer(pool.output[0])
        while node is not None and node.op_type in _PASS_THROUGH:
            tensor, node = node.output[0], only_consumer(node.output[0])
        if node is None or node.input[0] != tensor or node.op_type not in ("Gemm", "MatMul"):
            continue
        matrix = _constant(graph, node.input[1])
        if matrix is None or matrix.ndim != 2:
            continue
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transA", 0):
                continue
            weights = matrix if attrs.get("transB", 0) else matrix.T
            weights = weights * float(attrs.get("alpha", 1.0))
        else:
            weights = matrix.T
        end, node = node.output[0], only_consumer(node.output[0])
        if node is not None and node.op_type == "Add" and _has_constant_input(graph, node, end):
            end, node = node.output[0], only_consumer(node.output[0])
        while end != output_name and node is not None and node.op_type in _AFTER_CLASSIFIER:
            end, node = node.output[0], only_consumer(node.output[0])
        if end == output_name:
            return CamHead(features=pool.input[0], weights=np.asarray(weights, np.float32))
    return None


def _check_class(class_index: int, classes: int) -> None:
    if not 0 <= class_index < classes:
        raise ExplainError(f"class index {class_index} is outside 0..{classes - 1}")


def _layer_name(extractor: OnnxFeatureExtractor, tensor: str) -> str:
    graph = extractor.graph.graph
    indices = listed_nodes(graph)
    for index, name in display_names(graph, indices).items():
        if graph.node[index].output[0] == tensor:
            return name
    return tensor


def class_activation_map(
    extractor: OnnxFeatureExtractor,
    tensor: np.ndarray,
    class_index: int,
    *,
    grid: int = 7,
    batch_size: int = 16,
    cancel: CancelToken | None = None,
) -> CamResult:
    """Where the evidence for ``class_index`` lies in one ``[C, H, W]`` image, without gradients.

    Classic CAM when the graph allows it (one run), occlusion sensitivity otherwise
    (``grid``² + 1 runs in batches of ``batch_size``; ``cancel`` is checked between batches).

    Raises:
        ExplainError: The class index is out of range.
        Cancelled: ``cancel`` was cancelled during occlusion.
    """
    spec = extractor.spec
    _check_class(class_index, spec.num_classes)
    head = find_cam_head(extractor.graph, spec.output_name)
    if head is None or head.features not in extractor.feature_tensors:
        return occlusion_map(
            extractor, tensor, class_index, grid=grid, batch_size=batch_size, cancel=cancel
        )
    features, output = extractor.run(tensor, [head.features, spec.output_name])
    maps = features[0]
    if maps.ndim != 3 or head.weights.shape[1] != maps.shape[0]:
        return occlusion_map(
            extractor, tensor, class_index, grid=grid, batch_size=batch_size, cancel=cancel
        )
    cam = np.tensordot(head.weights[class_index], maps, axes=1)
    probs = extractor.probabilities_from_output(output)[0]
    return CamResult(
        heatmap=normalise_heatmap(cam),
        method=CLASSIC_CAM,
        class_index=class_index,
        probability=float(probs[class_index]),
        layer=_layer_name(extractor, head.features),
    )


def occlusion_map(
    extractor: OnnxFeatureExtractor,
    tensor: np.ndarray,
    class_index: int,
    *,
    grid: int = 7,
    batch_size: int = 16,
    cancel: CancelToken | None = None,
) -> CamResult:
    """Occlusion sensitivity: how much the class probability drops when each cell of a
    ``grid``×``grid`` split of the image is covered with mid-grey.

    Raises:
        ExplainError: The class index is out of range.
        Cancelled: ``cancel`` was cancelled.
    """
    spec = extractor.spec
    _check_class(class_index, spec.num_classes)
    image = np.asarray(tensor, dtype=np.float32)
    channels, height, width = image.shape
    grid = max(1, min(grid, height, width))
    grey = (0.5 - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    grey = np.broadcast_to(grey, (channels,))[:, None, None]
    rows = np.linspace(0, height, grid + 1).round().astype(int)
    cols = np.linspace(0, width, grid + 1).round().astype(int)
    base = float(extractor.probabilities(image)[class_index])
    drops = np.zeros(grid * grid, np.float32)
    for start in range(0, grid * grid, batch_size):
        if cancel is not None:
            cancel.raise_if_cancelled()
        cells = range(start, min(start + batch_size, grid * grid))
        batch = np.repeat(image[None], len(cells), axis=0)
        for slot, cell in enumerate(cells):
            i, j = divmod(cell, grid)
            batch[slot, :, rows[i] : rows[i + 1], cols[j] : cols[j + 1]] = grey
        drops[start : start + len(cells)] = base - extractor.probabilities(batch)[:, class_index]
    return CamResult(
        heatmap=normalise_heatmap(drops.reshape(grid, grid)),
        method=OCCLUSION,
        class_index=class_index,
        probability=base,
    )


def grad_cam(
    model: nn.Module, tensor: np.ndarray, class_index: int, layer: str | None = None
) -> CamResult:
    """Grad-CAM on a torch model for one ``[C, H, W]`` image (imports torch).

    Args:
        model: The classifier (logits out); it runs in eval mode and its mode is restored.
        tensor: The preprocessed image.
        class_index: The class to explain.
        layer: A module path (``bn2``), or a convolution as
            :meth:`TorchFeatureExtractor.conv_layers` names it (its activation is used).
            Default: the last module with a spatial output, the one feeding the global pool.

    Returns:
        The map at that layer's resolution. No hook stays attached and no ``requires_grad``
        flag is changed.

    Raises:
        ExplainError: Unknown layer, class out of range, or no spatial layer found.
    """
    import torch

    from cnn_desktop.core.explain.feature_maps_torch import capture_layer

    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    inputs = torch.tensor(np.asarray(tensor, dtype=np.float32), device=device)
    inputs = (inputs[None] if inputs.ndim == 3 else inputs).requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), capture_layer(model, layer) as captured:
            logits = model(inputs)
        activation: Any = captured.tensor
        if activation is None:
            raise ExplainError(f"layer '{layer or 'last spatial'}' produced no feature map")
        _check_class(class_index, int(logits.shape[-1]))
        (gradient,) = torch.autograd.grad(logits[0, class_index], activation)
        weights = gradient[0].mean(dim=(1, 2))
        cam = (weights[:, None, None] * activation.detach()[0]).sum(dim=0)
        probability = float(logits.detach().float().softmax(dim=-1)[0, class_index])
    finally:
        model.train(was_training)
    return CamResult(
        heatmap=normalise_heatmap(cam.float().cpu().numpy()),
        method=GRAD_CAM,
        class_index=class_index,
        probability=probability,
        layer=captured.name,
    )
