"""Inference backends behind one :class:`Classifier` interface.

The ONNX Runtime backend never imports torch; the PyTorch backend is imported on demand.
"""

from __future__ import annotations

from cnn_desktop.core.inference.backends.base import BACKENDS, DEVICES, BackendError, Classifier
from cnn_desktop.core.models.bundle import ModelBundle
from cnn_desktop.core.versions import NO_TORCH, torch_installed


def open_classifier(bundle: ModelBundle, backend: str = "onnx", device: str = "auto") -> Classifier:
    """Load ``bundle`` on a backend and device.

    Args:
        bundle: The model.
        backend: ``"onnx"`` (ONNX Runtime) or ``"torch"`` (PyTorch).
        device: ``"auto"`` (the best that works), ``"cpu"`` or ``"cuda"``.

    Raises:
        BackendError: Unknown backend or device, or the device does not work.
    """
    if device not in DEVICES:
        raise BackendError(f"unknown device '{device}' (choose from {', '.join(DEVICES)})")
    if backend == "onnx":
        from cnn_desktop.core.inference.backends.onnx import OnnxClassifier

        return OnnxClassifier(bundle, device)
    if backend == "torch":
        if not torch_installed():
            raise BackendError(f"the PyTorch backend needs PyTorch, and {NO_TORCH}")
        from cnn_desktop.core.inference.backends.torch import TorchClassifier

        return TorchClassifier(bundle, device)
    raise BackendError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")


__all__ = ["BACKENDS", "DEVICES", "BackendError", "Classifier", "open_classifier"]
