"""What hardware and ONNX Runtime providers exist, and which actually work.

A provider is "working" only once a small session on it has run; CUDA libraries that load
but fail on the first kernel are common, and users deserve to see the provider really used.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass

import numpy as np

GPU_PROVIDERS = ("CUDAExecutionProvider",)
PROBED_PROVIDERS = (*GPU_PROVIDERS, "CPUExecutionProvider")
FELL_BACK = "no usable GPU or GPU libraries; ONNX Runtime fell back to the CPU"


@dataclass(frozen=True)
class ProviderStatus:
    """One ONNX Runtime execution provider.

    Attributes:
        name: e.g. ``CUDAExecutionProvider``.
        working: Whether a test session ran on it.
        detail: Why it does not work, or what it runs on.
        tried: A test session was attempted: the provider is in the build and its hardware
            seems present (an NVIDIA driver for CUDA), so not working is a failure worth
            telling the user about, not the normal state of a machine without a GPU.
    """

    name: str
    working: bool
    detail: str = ""
    tried: bool = False


def cpu_threads() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _probe_model_bytes() -> bytes:
    """A one-node ONNX model (Conv) used to check that a provider really runs."""
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver could be there (always True off Linux, where we cannot tell
    cheaply). Probing CUDA without one costs ~80 ms of library loading under the GIL."""
    if not sys.platform.startswith("linux"):
        return True
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


def quiet_onnxruntime() -> None:
    """Keep ONNX Runtime's own log (CUDA library search noise) off the user's terminal."""
    import onnxruntime as ort

    ort.set_default_logger_severity(4)


@functools.cache
def _preload_cuda_libraries() -> None:
    """Let ONNX Runtime find CUDA/cuDNN from the pip-installed NVIDIA packages, if present."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        with contextlib.suppress(Exception):
            preload(cuda=True, cudnn=True, msvc=False)


@functools.cache
def onnx_provider_status(name: str) -> ProviderStatus:
    """Run a tiny session on provider ``name`` and report whether it worked (cached)."""
    import onnxruntime as ort

    if name not in ort.get_available_providers():
        return ProviderStatus(name, False, "not in this ONNX Runtime build")
    if name not in PROBED_PROVIDERS:
        return ProviderStatus(name, False, "available, not used by cnn-desktop")
    quiet_onnxruntime()
    if name in GPU_PROVIDERS:
        if not nvidia_driver_present():
            return ProviderStatus(name, False, "no NVIDIA driver on this machine")
        _preload_cuda_libraries()
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(_probe_model_bytes(), options, providers=[name])
        if session.get_providers()[0] != name:
            return ProviderStatus(name, False, FELL_BACK, tried=True)
        out = session.run(None, {"x": np.ones((1, 1, 4, 4), np.float32)})[0]
        if not np.allclose(out, 1.0):
            return ProviderStatus(name, False, "test inference gave wrong results", tried=True)
    except Exception as exc:  # any failure means "not usable"; keep the first line
        return ProviderStatus(name, False, first_line(exc), tried=True)
    return ProviderStatus(name, True, "test session ran", tried=True)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def onnx_providers() -> list[ProviderStatus]:
    """Every provider this ONNX Runtime build has, with whether it works here."""
    import onnxruntime as ort

    return [onnx_provider_status(name) for name in ort.get_available_providers()]
