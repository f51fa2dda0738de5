"""ONNX Runtime backend: CUDA when it is available and a test session on it works, else CPU.

With ``auto``, a CUDA provider that fails where a GPU seems present (its test session fails,
the model's session cannot be created on it, or ONNX Runtime silently leaves it out) never
stops the work: the session is made on the CPU and a one-sentence notice says why, for the
CLI's stderr and the window's notification area. Asking for ``cuda`` makes the same failures
a :class:`BackendError`. Never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort

from cnn_desktop.core.inference.backends.base import BackendError, softmax
from cnn_desktop.core.inference.devices import (
    FELL_BACK,
    GPU_PROVIDERS,
    first_line,
    onnx_provider_status,
)
from cnn_desktop.core.models.bundle import ModelBundle
from cnn_desktop.core.models.unknown import embedding_tensor


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


def cuda_fallback_notice(reason: str) -> str:
    """What the user is told when CUDA failed and the CPU runs the model instead."""
    return f"CUDA (ONNX Runtime's CUDA provider) failed ({reason}); running on the CPU"


def create_session(
    model: str | bytes, options: ort.SessionOptions, device: str = "auto"
) -> tuple[ort.InferenceSession, str]:
    """An ONNX Runtime session for ``model`` (a path or serialized bytes) on ``device``.

    Returns:
        The session and a notice: empty when it runs where it was asked to, else one sentence
        saying that CUDA failed, why, and that the CPU runs the model instead.

    Raises:
        BackendError: ``cuda`` was asked for and it does not work.
        Exception: Whatever ONNX Runtime raises for a graph the CPU cannot load either.
    """
    providers = choose_providers(device)
    notice = ""
    if device == "auto":
        status = onnx_provider_status(GPU_PROVIDERS[0])
        if status.tried and not status.working:  # its test session failed
            notice = cuda_fallback_notice(status.detail)
    if providers[0] not in GPU_PROVIDERS:
        return ort.InferenceSession(model, options, providers=providers), notice
    try:
        session = ort.InferenceSession(model, options, providers=providers)
    except Exception as exc:  # CUDA out of memory, an operator it lacks, a cuDNN mismatch…
        reason = first_line(exc)
    else:
        if session.get_providers()[0] in GPU_PROVIDERS:
            return session, ""
        reason = FELL_BACK
    if device == "cuda":
        raise BackendError(f"CUDA was asked for but ONNX Runtime cannot use it: {reason}")
    cpu = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return cpu, cuda_fallback_notice(reason)


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
    whose rows are dropped. ``notice`` is non-empty when CUDA failed and the CPU runs it.
    A bundle with an unknown detector also gets its embedding as a second output, for
    :meth:`predict_with_embeddings`.
    """

    backend = "onnx"

    def __init__(self, bundle: ModelBundle, device: str = "auto", threads: int = 1) -> None:
        self.bundle = bundle
        self.spec = bundle.spec
        model: str | bytes = str(bundle.onnx_path)
        self.embedding_output: str | None = None
        if bundle.unknown is not None:  # the graph is checked: load_bundle read it
            proto = onnx.load(model)
            self.embedding_output = embedding_tensor(proto)
            proto.graph.output.append(onnx.ValueInfoProto(name=self.embedding_output))
            model = proto.SerializeToString()
        try:
            self.session, self.notice = create_session(model, session_options(threads), device)
        except BackendError:
            raise
        except Exception as exc:  # ORT raises its own exception types for bad graphs
            raise BackendError(
                f"ONNX Runtime cannot load {bundle.onnx_path.name}: {first_line(exc, 10_000)}"
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

    def predict_with_embeddings(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities ``[N, classes]`` and embeddings ``[N, D]`` (the input of the
        final fully connected layer) of a batch; only for a bundle with an unknown detector."""
        if self.embedding_output is None:
            raise BackendError(f"{self.bundle.path.name} has no unknown detector")
        batch = np.ascontiguousarray(batch, np.float32)
        names = [self.spec.output_name, self.embedding_output]

        def run(chunk: np.ndarray) -> list[np.ndarray]:
            outputs = self.session.run(names, {self.spec.input_name: chunk})
            probs = np.asarray(outputs[0], dtype=np.float32)
            probs = probs if self.spec.output_is_probability else softmax(probs)
            return [probs, np.asarray(outputs[1], np.float32).reshape(len(chunk), -1)]

        probabilities, embeddings = run_in_fixed_batches(run, batch, self.fixed_batch_size)
        return probabilities, embeddings

    def _run(self, batch: np.ndarray) -> np.ndarray:
        outputs = self.session.run([self.spec.output_name], {self.spec.input_name: batch})
        probs = np.asarray(outputs[0], dtype=np.float32)
        return probs if self.spec.output_is_probability else softmax(probs)
