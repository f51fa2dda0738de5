"""ONNX Runtime backend: CUDA when it is available and a test session on it works, else CPU.

Never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnxruntime as ort

from cnn_desktop.core.inference.backends.base import BackendError, softmax
from cnn_desktop.core.inference.devices import GPU_PROVIDERS, onnx_provider_status
from cnn_desktop.core.models.bundle import ModelBundle


def choose_providers(device: str) -> list[str]:
    """Execution providers to ask for, best first, for ``auto``, ``cpu`` or ``cuda``.

    Raises:
        BackendError: ``cuda`` was asked for and no GPU provider works.
    """
    if device == "cpu":
        return ["CPUExecutionProvider"]
    working = [p for p in GPU_PROVIDERS if onnx_provider_status(p).working]
    if device == "cuda" and not working:
        detail = onnx_provider_status(GPU_PROVIDERS[0]).detail
        raise BackendError(f"CUDA was asked for but ONNX Runtime cannot use it: {detail}")
    return [*working, "CPUExecutionProvider"]


def session_options(threads: int = 1) -> ort.SessionOptions:
    """Session options: ``threads`` intra-op threads, no spinning between calls.

    The prediction pipeline runs one batch per core at once, so on the CPU each call gets one
    thread (measured faster than one call spread over every core: see
    ``benchmarks/bench_classify.py``).
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def run_in_fixed_batches(
    run: Callable[[np.ndarray], list[np.ndarray]], batch: np.ndarray, fixed: int | None
) -> list[np.ndarray]:
    """``run(batch)`` for a graph whose batch dimension may be fixed.

    With a fixed batch size, ``batch`` is split into chunks of exactly that size, the last one
    padded with zeros whose rows are dropped from every output; otherwise ``run`` sees it whole.
    """
    if fixed is None or len(batch) == fixed:
        return run(batch)
    pieces: list[list[np.ndarray]] = []
    for start in range(0, len(batch), fixed):
        chunk = batch[start : start + fixed]
        count = len(chunk)
        if count < fixed:
            padding = np.zeros((fixed - count, *chunk.shape[1:]), chunk.dtype)
            chunk = np.concatenate([chunk, padding])
        pieces.append([np.asarray(output)[:count] for output in run(chunk)])
    return [np.concatenate(outputs) for outputs in zip(*pieces, strict=True)]


class OnnxClassifier:
    """A model bundle running on ONNX Runtime.

    A graph exported with a fixed batch size (``[1, 3, H, W]``) is only ever run on batches
    of exactly that size: larger batches are split, and the last one is padded with zeros
    whose rows are dropped.
    """

    backend = "onnx"

    def __init__(self, bundle: ModelBundle, device: str = "auto", threads: int = 1) -> None:
        self.bundle = bundle
        self.spec = bundle.spec
        providers = choose_providers(device)
        try:
            self.session = ort.InferenceSession(
                str(bundle.onnx_path), session_options(threads), providers=providers
            )
        except Exception as exc:  # ORT raises its own exception types for bad graphs
            first_line = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            raise BackendError(
                f"ONNX Runtime cannot load {bundle.onnx_path.name}: {first_line}"
            ) from None
        self.device = self.session.get_providers()[0]
        self.uses_gpu = self.device in GPU_PROVIDERS
        self.fixed_batch_size = bundle.batch_size

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities ``[N, classes]`` for a float32 batch ``[N, C, H, W]``."""
        batch = np.ascontiguousarray(batch, np.float32)
        if not len(batch):
            return np.empty((0, self.spec.num_classes), np.float32)
        return run_in_fixed_batches(lambda chunk: [self._run(chunk)], batch, self.fixed_batch_size)[
            0
        ]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        outputs = self.session.run([self.spec.output_name], {self.spec.input_name: batch})
        probs = np.asarray(outputs[0], dtype=np.float32)
        return probs if self.spec.output_is_probability else softmax(probs)
