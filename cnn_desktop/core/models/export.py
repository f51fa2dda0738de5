"""ONNX export of a torch classifier, with the spec embedded and layer outputs located."""

from __future__ import annotations

import dataclasses
import io
import math
from typing import TYPE_CHECKING

import onnx

from cnn_desktop.core.imaging.warnings_lock import ignoring_warnings
from cnn_desktop.core.models.spec import LayerRef, ModelSpec
from cnn_desktop.core.models.zoo import replace_submodule

if TYPE_CHECKING:
    import torch
    from torch import nn

OPSET = 17


def export_onnx(
    model: nn.Module, spec: ModelSpec, layers: list[str]
) -> tuple[onnx.ModelProto, ModelSpec]:
    """Export ``model`` with a softmax on its output and a dynamic batch axis.

    The logits are divided by the spec's calibration ``temperature`` before the softmax (when
    it is not 1), so the graph's output is the calibrated probabilities.

    Args:
        model: The torch classifier (logits out); it is put in eval mode.
        spec: Its spec; ``input_name``/``output_name`` name the graph's tensors.
        layers: Module paths worth visualising; each is matched to its ONNX output tensor.

    Returns:
        The ONNX model and the spec with ``layers`` filled in (layers that could not be
        located in the graph are left out).
    """
    import torch

    dummy = torch.zeros(1, spec.channels, *spec.input_size)
    model = freeze_adaptive_pooling(freeze_same_padding(model.eval(), dummy), dummy)
    # In eval mode: torch.onnx.export restores the mode the wrapper had, and a new module is in
    # training mode, which would leave the caller's model training (dropout drawing numbers).
    wrapped = _WithSoftmax(model, spec.temperature).eval()
    buffer = io.BytesIO()
    with ignoring_warnings(), torch.no_grad():
        torch.onnx.export(
            wrapped,
            (dummy,),
            buffer,
            input_names=[spec.input_name],
            output_names=[spec.output_name],
            dynamic_axes={spec.input_name: {0: "batch"}, spec.output_name: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    refs = tuple(
        LayerRef(name=name, onnx_output=output)
        for name in layers
        if (output := layer_output_name(proto, name))
    )
    spec = dataclasses.replace(spec, layers=refs, output_is_probability=True)
    return proto, spec


def freeze_same_padding(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of ``model`` whose TF-style 'same' convolutions pad by constants.

    timm's ``Conv2dSame`` computes its padding from the input shape at run time, which exports
    as ~15 shape-arithmetic nodes and an unfusable ``Pad`` per layer. The network input size is
    fixed by the spec, so each layer's padding is a constant: replacing it with ``ZeroPad2d``
    lets ONNX Runtime fold the padding into the convolution (same numbers, faster graph).
    Models without such layers are returned unchanged.
    """

    from torch import nn

    same_convs = {
        name: module
        for name, module in model.named_modules()
        if type(module).__name__ == "Conv2dSame" and isinstance(module, nn.Conv2d)
    }
    if not same_convs:
        return model
    frozen, sizes = _copy_with_input_sizes(model, list(same_convs), example)
    for name in same_convs:
        conv = frozen.get_submodule(name)
        plain = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            0,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
        )
        plain.load_state_dict(conv.state_dict())
        pads = _same_pads(sizes[name], conv.kernel_size, conv.stride, conv.dilation)
        replace_submodule(frozen, name, nn.Sequential(nn.ZeroPad2d(pads), plain))
    return frozen.eval()


def freeze_adaptive_pooling(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of ``model`` whose adaptive average pools have fixed, exportable equivalents.

    ONNX has no adaptive pooling; the exporter refuses it unless the output size divides the
    input size (LeNet-5 at 32 px, AlexNet at 128, VGG at 64 all fail). The input size is fixed
    by the spec, so each such pool is exactly two constant averaging matrices. Global pools
    (output 1×1) export fine and are kept. Models needing no change are returned as they are.
    """

    from torch import nn

    candidates = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.AdaptiveAvgPool2d) and _pool_size(module.output_size) != (1, 1)
    ]
    if not candidates:
        return model
    frozen, sizes = _copy_with_input_sizes(model, candidates, example)
    for name in candidates:
        pool = frozen.get_submodule(name)
        in_h, in_w = sizes[name]
        out_h, out_w = _pool_size(pool.output_size, (in_h, in_w))
        if in_h % out_h == 0 and in_w % out_w == 0:
            continue  # the exporter handles these itself
        replace_submodule(frozen, name, _FixedAveragePool(in_h, in_w, out_h, out_w))
    return frozen.eval()


def _copy_with_input_sizes(
    model: nn.Module, names: list[str], example: torch.Tensor
) -> tuple[nn.Module, dict[str, tuple[int, int]]]:
    """A deep copy of ``model`` and the (height, width) each named module receives when
    the copy runs on ``example``."""
    import copy

    import torch

    frozen = copy.deepcopy(model)
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [
        frozen.get_submodule(name).register_forward_pre_hook(
            lambda _m, args, name=name: sizes.__setitem__(name, tuple(args[0].shape[-2:]))
        )
        for name in names
    ]
    try:
        with torch.no_grad():
            frozen(example)
    finally:
        for hook in hooks:
            hook.remove()
    return frozen, sizes


def _pool_size(size: object, inputs: tuple[int, int] | None = None) -> tuple[int, int]:
    pair = size if isinstance(size, tuple) else (size, size)
    if inputs is None:
        return tuple(pair)  # type: ignore[return-value]
    return tuple(i if s is None else int(s) for s, i in zip(pair, inputs, strict=True))  # type: ignore[return-value]


def _averaging_matrix(size_in: int, size_out: int):
    """PyTorch's adaptive-average bins as a ``[size_out, size_in]`` matrix."""
    import torch

    matrix = torch.zeros(size_out, size_in)
    for i in range(size_out):
        start = (i * size_in) // size_out
        end = -((-(i + 1) * size_in) // size_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def _FixedAveragePool(in_h: int, in_w: int, out_h: int, out_w: int):
    from torch import nn

    class FixedAveragePool(nn.Module):
        """Adaptive average pooling for one input size, as two matrix products."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("rows", _averaging_matrix(in_h, out_h))
            self.register_buffer("columns", _averaging_matrix(in_w, out_w).T.contiguous())

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.rows @ x @ self.columns

    return FixedAveragePool()


def _same_pads(
    size: tuple[int, int],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[int, int, int, int]:
    """TensorFlow 'SAME' padding (left, right, top, bottom) for an input of ``size`` (h, w)."""
    totals = []
    for length, k, s, d in zip(size, kernel, stride, dilation, strict=True):
        totals.append(max((math.ceil(length / s) - 1) * s + (k - 1) * d + 1 - length, 0))
    pad_h, pad_w = totals
    return (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)


def layer_output_name(proto: onnx.ModelProto, module_path: str) -> str | None:
    """The ONNX tensor a module produced: the last node in that module's export scope."""
    scope = "/model/" + "/".join(_scope_components(module_path)) + "/"
    found = None
    for node in proto.graph.node:
        if node.name.startswith(scope) and node.output:
            found = node.output[0]
    return found


def _scope_components(module_path: str) -> list[str]:
    """The exporter's scope names: a named child keeps its name; a numbered child (in a
    Sequential/ModuleList) is prefixed by its parent's scope name, the root's being ``model``."""
    components: list[str] = []
    parent = "model"
    for part in module_path.split("."):
        name = f"{parent}.{part}" if part.isdigit() else part
        components.append(name)
        parent = name
    return components


def _with_softmax_class() -> type:
    from torch import nn

    class WithSoftmax(nn.Module):
        def __init__(self, model: nn.Module, temperature: float) -> None:
            super().__init__()
            self.model = model
            self.temperature = float(temperature)

        def forward(self, x):  # type: ignore[no-untyped-def]
            logits = self.model(x)
            if self.temperature != 1.0:
                logits = logits / self.temperature
            return logits.softmax(dim=-1)

    return WithSoftmax


def _WithSoftmax(model: nn.Module, temperature: float = 1.0) -> nn.Module:
    return _with_softmax_class()(model, temperature)
