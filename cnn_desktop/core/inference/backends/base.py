"""The interface every inference backend implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from cnn_desktop.core.models.spec import ModelSpec

BACKENDS = ("onnx", "torch")
DEVICES = ("auto", "cpu", "cuda")


class BackendError(RuntimeError):
    """A backend cannot run this model on the requested device; the message says why."""


class Classifier(Protocol):
    """A loaded model that turns preprocessed images into class probabilities.

    Attributes:
        spec: The model's spec.
        backend: ``"onnx"`` or ``"torch"``.
        device: What actually runs the model, e.g. ``"CPUExecutionProvider"`` or
            ``"cuda:0 (NVIDIA H100)"``.
        uses_gpu: Whether that is a GPU.
        fixed_batch_size: The only batch size the model runs, when its graph fixes one
            (``predict`` still takes any number of images); None when any size works.
        notice: Empty, or one sentence the user must see about where the model runs (e.g.
            CUDA failed and the CPU runs it instead).
    """

    spec: ModelSpec
    backend: str
    device: str
    uses_gpu: bool
    fixed_batch_size: int | None
    notice: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities ``[N, classes]`` for a float32 batch ``[N, C, H, W]``."""
        ...


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
