"""Feature maps and the layer summary on PyTorch, named as the ONNX side names them.

A convolution ``blocks.1.0.conv_pw`` is listed as ``blocks.1.0.conv_pw (Conv)``, exactly as
:class:`.feature_maps.OnnxFeatureExtractor` lists it in the exported graph. Its feature
maps are the activation after it, as on the ONNX side where BatchNorm is folded into the
convolution: the output of the BatchNorm that directly consumes the convolution's output (timm's
``BatchNormAct2d`` includes the activation), then of the activation module that directly consumes
that, when there is one. "Directly consumes" is decided while the model runs, by tensor identity.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cnn_desktop.core.explain.feature_maps import ExplainError, LayerInfo, kernels_to_rgb
from cnn_desktop.core.models.bundle import ModelBundle
from cnn_desktop.core.models.spec import ModelSpec

_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.GELU, nn.LeakyReLU, nn.ELU,
    nn.SELU, nn.CELU, nn.Sigmoid, nn.Mish, nn.Tanh, nn.PReLU, nn.Hardtanh, nn.Softplus,
)  # fmt: skip
# timm's own activation classes, by name.
_ACTIVATION_NAMES = frozenset({"swish", "hardswish", "hardsigmoid", "mish", "gelu", "sigmoid"})
_PADS = (nn.ZeroPad2d, nn.ConstantPad2d)


def is_activation(module: nn.Module) -> bool:
    """Whether a module is an element-wise activation."""
    return isinstance(module, _ACTIVATIONS) or type(module).__name__.lower() in _ACTIVATION_NAMES


def conv_display_name(model: nn.Module, path: str) -> str:
    """The name the ONNX side gives the convolution at module ``path``.

    A ``Sequential(ZeroPad2d, Conv2d)`` (a frozen TF-"same" convolution) is named after the
    Sequential.
    """
    parent_path, _, last = path.rpartition(".")
    if last == "1" and parent_path:
        parent = model.get_submodule(parent_path)
        children = list(parent.children())
        is_pair = isinstance(parent, nn.Sequential) and len(children) == 2
        if is_pair and isinstance(children[0], _PADS):
            path = parent_path
    return f"{path} (Conv)"


def conv_modules(model: nn.Module) -> dict[str, str]:
    """Display name → module path of every 2-D convolution, in registration order."""
    return {
        conv_display_name(model, path): path
        for path, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
    }


@dataclass
class CapturedLayer:
    """What :func:`capture_layer` recorded.

    Attributes:
        name: The layer's name.
        tensor: Its output (batch first), once the model has run.
        norm: For a convolution, the BatchNorm that directly consumed its output, if any.
    """

    name: str
    tensor: torch.Tensor | None = None
    norm: nn.Module | None = None


class _ConvChain:
    """Hook callbacks following a convolution's output through a BatchNorm and an activation
    that directly consume it (each at most once, in that order)."""

    def __init__(self, captured: CapturedLayer, detach: bool) -> None:
        self.captured, self.detach = captured, detach
        self.stage = ""
        self.current: torch.Tensor | None = None

    def _take(self, output: torch.Tensor, stage: str) -> None:
        self.stage, self.current = stage, output
        self.captured.tensor = output.detach().clone() if self.detach else output

    def on_conv(self, _module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        if not self.stage:
            self._take(output, "conv")

    def on_norm(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if self.stage == "conv" and inputs and inputs[0] is self.current:
            self._take(output, "norm")
            self.captured.norm = module

    def on_activation(self, _module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if self.stage in ("conv", "norm") and inputs and inputs[0] is self.current:
            self._take(output, "activation")


def _is_spatial(output: Any) -> bool:
    return isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[-2:].numel() > 1


@contextmanager
def capture_layer(
    model: nn.Module, layer: str | None, detach: bool = False
) -> Iterator[CapturedLayer]:
    """Record one layer's output during the forward pass run inside the ``with`` block.

    Args:
        model: The model.
        layer: A module path, a convolution's display name (its activation is recorded), or
            None for the last module to produce a spatial (4-D, larger than 1×1) output.
        detach: Record a detached copy (for display) instead of the live tensor (for gradients).

    Raises:
        ExplainError: The layer does not exist.
    """
    modules = dict(model.named_modules())
    convs = conv_modules(model)
    captured = CapturedLayer(name=layer or "")
    keep = (lambda t: t.detach().clone()) if detach else (lambda t: t)
    handles = []
    if layer is None:

        def on_any(_module: nn.Module, _inputs: Any, output: Any, name: str = "") -> None:
            if _is_spatial(output):  # copied once, at the end, when detaching
                captured.name, captured.tensor = name, output

        for name, module in modules.items():
            if name:
                hook = functools.partial(on_any, name=name)
                handles.append(module.register_forward_hook(hook))
    elif layer in convs:
        chain = _ConvChain(captured, detach)
        handles.append(modules[convs[layer]].register_forward_hook(chain.on_conv))
        for module in modules.values():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                handles.append(module.register_forward_hook(chain.on_norm))
            elif is_activation(module):
                handles.append(module.register_forward_hook(chain.on_activation))
    elif layer and layer in modules:

        def on_layer(_module: nn.Module, _inputs: Any, output: Any) -> None:
            output = output[0] if isinstance(output, (tuple, list)) else output
            if captured.tensor is None and isinstance(output, torch.Tensor):
                captured.tensor = keep(output)

        handles.append(modules[layer].register_forward_hook(on_layer))
    else:
        raise ExplainError(f"the model has no layer named '{layer}'")
    try:
        yield captured
        if layer is None and captured.tensor is not None:
            captured.tensor = keep(captured.tensor)
    finally:
        for handle in handles:
            handle.remove()


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


class TorchFeatureExtractor:
    """Feature maps of a torch model, with the same layer names and values as on ONNX Runtime.

    Calls are serialised (hooks are attached to the shared model for the duration of a call).
    """

    def __init__(self, source: ModelBundle | nn.Module, spec: ModelSpec | None = None) -> None:
        """Build from a bundle (its weights are loaded) or from a model and its spec.

        Raises:
            ExplainError: A model was given without a spec.
            BackendError: The bundle's weights cannot be loaded.
        """
        if isinstance(source, ModelBundle):
            from cnn_desktop.core.inference.backends.torch import load_torch_model

            self.model = load_torch_model(source)
            self.spec = source.spec
        else:
            if spec is None:
                raise ExplainError("a torch model needs its spec to be explained")
            self.model, self.spec = source, spec
        self._convs: list[str] | None = None
        self._lock = threading.Lock()

    def _inputs(self, tensor: np.ndarray | None) -> torch.Tensor:
        if tensor is None:
            shape = (self.spec.channels, *self.spec.input_size)
            tensor = np.zeros(shape, np.float32)
        batch = torch.as_tensor(np.asarray(tensor, dtype=np.float32))
        return (batch[None] if batch.ndim == 3 else batch).to(_model_device(self.model))

    def _forward(self, tensor: np.ndarray | None) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                return self.model(self._inputs(tensor))
        finally:
            self.model.train(was_training)

    def conv_layers(self) -> list[str]:
        """Display names of every convolution, in the order the forward pass runs them."""
        with self._lock:
            if self._convs is None:
                names = {path: name for name, path in conv_modules(self.model).items()}
                order: list[str] = []
                modules = self.model.named_modules()
                handles = [
                    module.register_forward_pre_hook(
                        lambda *_, name=names[path]: order.append(name)
                    )
                    for path, module in modules
                    if path in names
                ]
                try:
                    self._forward(None)
                finally:
                    for handle in handles:
                        handle.remove()
                self._convs = list(dict.fromkeys(order))
            return list(self._convs)

    def feature_maps(self, tensor: np.ndarray, layer: str) -> np.ndarray:
        """The activation ``[channels, h, w]`` after convolution ``layer`` for a ``[C, H, W]``
        image.

        Raises:
            ExplainError: No convolution has that name.
        """
        if layer not in conv_modules(self.model):
            raise ExplainError(f"the model has no convolution named '{layer}'")
        with self._lock, capture_layer(self.model, layer, detach=True) as captured:
            self._forward(tensor)
        if captured.tensor is None:
            raise ExplainError(f"convolution '{layer}' did not run for this input")
        return captured.tensor[0].float().cpu().numpy()

    def probabilities(self, tensor: np.ndarray) -> np.ndarray:
        """Class probabilities ``[classes]`` for one ``[C, H, W]`` image."""
        with self._lock:
            return self._forward(tensor).float().softmax(dim=-1)[0].cpu().numpy()

    def kernels_rgb(self, max_kernels: int = 64) -> np.ndarray:
        """The first convolution's kernels as ``[N, kh, kw, 3]`` uint8 tiles, with a directly
        following BatchNorm folded in (as the ONNX graph holds them)."""
        layers = self.conv_layers()
        if not layers:
            raise ExplainError("the model has no convolution")
        with self._lock, capture_layer(self.model, layers[0], detach=True) as captured:
            self._forward(None)
        conv = self.model.get_submodule(conv_modules(self.model)[layers[0]])
        weight = conv.weight.detach().float()
        norm = captured.norm
        if norm is not None and norm.running_var is not None:
            scale = torch.rsqrt(norm.running_var.float() + norm.eps)
            if norm.weight is not None:
                scale = scale * norm.weight.detach().float()
            weight = weight * scale[:, None, None, None]
        return kernels_to_rgb(weight.cpu().numpy(), max_kernels)


def torch_model_summary(model: nn.Module, input_size: tuple[int, int, int]) -> list[LayerInfo]:
    """Every module that computes (leaves, and modules holding weights of their own) in the
    order the forward pass first calls them, for an input of ``(channels, height, width)``.

    Convolutions are named as :class:`TorchFeatureExtractor` names them; other modules
    ``path (ClassName)``. Parameters are each module's own (BatchNorm's scale and shift
    included, unlike the ONNX graph where they are folded into the convolution).
    """
    order: dict[str, nn.Module] = {}
    shapes: dict[str, tuple[int | None, ...]] = {}

    def on_call(module: nn.Module, _inputs: Any, path: str = "") -> None:
        order.setdefault(path, module)

    def on_output(_module: nn.Module, _inputs: Any, output: Any, path: str = "") -> None:
        output = output[0] if isinstance(output, (tuple, list)) else output
        if path not in shapes and isinstance(output, torch.Tensor):
            shapes[path] = (None, *output.shape[1:])

    handles = []
    for path, module in model.named_modules():
        leaf = next(module.children(), None) is None
        owns_weights = next(module.parameters(recurse=False), None) is not None
        if path and not isinstance(module, (nn.Identity, nn.Dropout)) and (leaf or owns_weights):
            handles.append(module.register_forward_pre_hook(functools.partial(on_call, path=path)))
            handles.append(module.register_forward_hook(functools.partial(on_output, path=path)))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(torch.zeros(1, *input_size, device=_model_device(model)))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    summary = []
    for path, module in order.items():
        is_conv = isinstance(module, nn.Conv2d)
        name = conv_display_name(model, path) if is_conv else f"{path} ({type(module).__name__})"
        params = sum(p.numel() for p in module.parameters(recurse=False))
        kind = type(module).__name__
        summary.append(LayerInfo(name, kind, shapes.get(path, ()), params, is_conv))
    return summary
