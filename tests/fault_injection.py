"""Faults injected for real into the libraries the app calls, for the ``test_faults*`` tests:
a CUDA execution provider that fails (this machine has no GPU), and models that run out of
memory on large batches (:class:`OutOfMemoryAbove`).

:func:`break_cuda` takes ``setattr_`` (``monkeypatch.setattr`` in a test, plain ``setattr`` in a
child process started through :data:`CHILD_WITH_BROKEN_CUDA`), so what it changes is undone
at the end of a test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

CUDA = "CUDAExecutionProvider"
CUDA_ERROR = "CUDA failure 100: no CUDA-capable device is detected (injected)"
Setattr = Callable[[Any, str, Any], None]


def break_cuda(setattr_: Setattr, *, probe_passes: bool = False, silently: bool = False) -> None:
    """Make ONNX Runtime list CUDA, on a machine with an NVIDIA driver, and fail on it.

    Args:
        setattr_: How to patch (``monkeypatch.setattr`` or ``setattr``).
        probe_passes: The app's tiny test session on CUDA works (the failure comes only with
            the real model, as when its weights do not fit in GPU memory).
        silently: Creating a session with CUDA does not raise: ONNX Runtime leaves CUDA out
            of ``session.get_providers()`` and runs on the CPU.
    """
    import onnxruntime as ort

    from cnn_desktop.core.inference import devices
    from cnn_desktop.core.inference.backends import onnx as onnx_backend

    real_session, real_available = ort.InferenceSession, ort.get_available_providers

    def available() -> list[str]:
        names = list(real_available())
        return names if CUDA in names else [CUDA, *names]

    def session(model, options=None, providers=None, **kwargs):
        if CUDA in (providers or ()):
            if not silently:
                raise RuntimeError(CUDA_ERROR)
            providers = [p for p in providers if p != CUDA] or ["CPUExecutionProvider"]
        return real_session(model, options, providers=providers, **kwargs)

    devices.onnx_provider_status.cache_clear()
    setattr_(ort, "get_available_providers", available)
    setattr_(ort, "InferenceSession", session)
    setattr_(devices, "nvidia_driver_present", lambda: True)
    if probe_passes:
        real_status = devices.onnx_provider_status

        def status(name: str) -> devices.ProviderStatus:
            if name == CUDA:
                return devices.ProviderStatus(name, True, "test session ran", tried=True)
            return real_status(name)

        setattr_(onnx_backend, "onnx_provider_status", status)


CHILD_WITH_BROKEN_CUDA = """
import sys
from tests.fault_injection import break_cuda
break_cuda(setattr, probe_passes=sys.argv[1] == "probe-passes")
from cnn_desktop.cli.main import main
sys.exit(main(sys.argv[2:]))
"""
"""``python -c CHILD_WITH_BROKEN_CUDA probe-passes|probe-fails ARGS…``: the CLI with CUDA
broken (run from the repository root, so that ``tests`` can be imported)."""


class OutOfMemoryAbove:
    """Makes a model's forward raise out of memory for batches larger than ``largest``
    (``torch.cuda.OutOfMemoryError``, or with ``cuda=False`` the CPU allocator's
    ``RuntimeError``) while :attr:`armed`; :attr:`ran` lists the batch sizes it really ran."""

    def __init__(self, model: Any, largest: int, cuda: bool = True) -> None:
        self.largest, self.cuda, self.armed = largest, cuda, True
        self.ran: list[int] = []
        self._forward = model.forward
        model.forward = self._limited

    def _limited(self, inputs, *args, **kwargs):
        import torch

        if self.armed and len(inputs) > self.largest:
            if self.cuda:
                raise torch.cuda.OutOfMemoryError(
                    f"CUDA out of memory. Tried to allocate {len(inputs) * 64} MiB (injected)"
                )
            raise RuntimeError(
                "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough "
                "memory: you tried to allocate 8589934592 bytes. (injected)"
            )
        if self.armed:
            self.ran.append(len(inputs))
        return self._forward(inputs, *args, **kwargs)


def write_unique_digits(folder: Path, seed: int) -> Path:
    """Digits 0 and 1 (12 each) with a few random pixels, so that no earlier run embedded
    their bytes: head-mode training must read every file (none is in the embedding cache)."""
    import numpy as np
    from PIL import Image

    from tests.datasets import write_digits_dataset

    write_digits_dataset(folder, per_class=12, classes=range(2))
    rng = np.random.default_rng(seed)
    for path in sorted(folder.rglob("*.png")):
        pixels = np.asarray(Image.open(path), np.uint8).copy()
        pixels[0, :8] = rng.integers(0, 255, 8, dtype=np.uint8)
        Image.fromarray(pixels).save(path)
    return folder
