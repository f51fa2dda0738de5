"""ONNX export of a torch classifier, with the spec embedded and layer outputs located."""

from __future__ import annotations

import dataclasses
import io
import warnings
from typing import TYPE_CHECKING

import onnx

from cnn_desktop.core.spec import LayerRef, ModelSpec

if TYPE_CHECKING:
    from torch import nn

OPSET = 17


def export_onnx(
    model: nn.Module, spec: ModelSpec, layers: list[str]
) -> tuple[onnx.ModelProto, ModelSpec]:
    """Export ``model`` with a softmax on its output and a dynamic batch axis.

    Args:
        model: The torch classifier (logits out); it is put in eval mode.
        spec: Its spec; ``input_name``/``output_name`` name the graph's tensors.
        layers: Module paths worth visualising; each is matched to its ONNX output tensor.

    Returns:
        The ONNX model and the spec with ``layers`` filled in (layers that could not be
        located in the graph are left out).
    """
    import torch

    model = model.eval()
    wrapped = _WithSoftmax(model)
    dummy = torch.zeros(1, spec.channels, *spec.input_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
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
        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x):  # type: ignore[no-untyped-def]
            return self.model(x).softmax(dim=-1)

    return WithSoftmax


def _WithSoftmax(model: nn.Module) -> nn.Module:
    return _with_softmax_class()(model)
