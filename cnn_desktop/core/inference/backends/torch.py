"""PyTorch backend: CUDA, then MPS, then CPU. Weights are read only through safetensors."""

from __future__ import annotations

import numpy as np
import torch

from cnn_desktop.core.inference.backends.base import BackendError
from cnn_desktop.core.models.bundle import ModelBundle
from cnn_desktop.core.models.torch_random import PrivateRandom
from cnn_desktop.core.models.zoo import UnknownArchitecture, build_model


def torch_device(device: str = "auto") -> torch.device:
    """The torch device for ``auto`` (CUDA, then MPS, then CPU), ``cpu`` or ``cuda``.

    Raises:
        BackendError: ``cuda`` was asked for and torch sees no working CUDA device.
    """
    if device == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", 0)
    if device == "cuda":
        raise BackendError("CUDA was asked for but PyTorch sees no CUDA device")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """A readable name for a torch device."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    return device.type


def load_torch_model(bundle: ModelBundle) -> torch.nn.Module:
    """Build the bundle's architecture and load its safetensors weights (eval mode, CPU).

    Raises:
        BackendError: No weights, an unknown architecture, or weights that do not fit.
    """
    from safetensors.torch import load_file

    spec = bundle.spec
    if bundle.weights_path is None:
        raise BackendError(
            f"{bundle.path.name} has no weights.safetensors; the PyTorch backend needs them "
            "(use the ONNX backend for this model)"
        )
    try:
        with PrivateRandom(0):  # the initial weights are replaced: leave the global RNG alone
            model = build_model(spec.architecture, spec.num_classes, spec.channels, spec.input_size)
    except UnknownArchitecture as exc:
        raise BackendError(str(exc)) from None
    try:
        state = load_file(str(bundle.weights_path))
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise BackendError(f"weights do not fit {spec.architecture}: {first}") from None
    return model.eval()


class TorchClassifier:
    """A model bundle running on PyTorch."""

    backend = "torch"

    def __init__(self, bundle: ModelBundle, device: str = "auto") -> None:
        self.bundle = bundle
        self.spec = bundle.spec
        self.torch_device = torch_device(device)
        self.model = load_torch_model(bundle).to(self.torch_device)
        self.device = describe_device(self.torch_device)
        self.uses_gpu = self.torch_device.type != "cpu"
        self.fixed_batch_size: int | None = None  # the torch model takes any batch
        self.notice = ""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities ``[N, classes]`` for a float32 batch ``[N, C, H, W]``:
        the weights are the raw trained ones, so the logits are divided by the spec's
        temperature here (the ONNX graph does it inside)."""
        with torch.inference_mode():
            inputs = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.torch_device)
            logits = self.model(inputs).float()
            if self.spec.temperature != 1.0:
                logits = logits / self.spec.temperature
            return logits.softmax(dim=-1).cpu().numpy()
