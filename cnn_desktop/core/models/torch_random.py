"""A private random stream for torch code that can only draw from the global generator
(imports torch)."""

from __future__ import annotations

import threading

import torch

_GLOBAL_RNG_LOCK = threading.RLock()  # re-entrant: a stream may be used inside another


class PrivateRandom:
    """A seeded random stream for what can only draw from torch's global generator: weight
    initialisation in module constructors, and dropout.

    Inside ``with stream:`` torch's global CPU generator (and the CUDA one of ``device``)
    holds this stream's state; on exit the stream keeps where it got to and the global state
    is put back exactly as it was, so a training run neither seeds nor consumes the process's
    random numbers, and the same seed still gives the same run. The blocks of every stream
    take one lock, so two runs in one process never interleave their swaps.
    """

    def __init__(self, seed: int, device: torch.device | None = None) -> None:
        self._cpu = torch.Generator().manual_seed(seed).get_state()
        self._cuda_device = device if device is not None and device.type == "cuda" else None
        self._cuda = None
        if self._cuda_device is not None:
            self._cuda = torch.Generator(self._cuda_device).manual_seed(seed).get_state()
        self._saved: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def __enter__(self) -> PrivateRandom:
        _GLOBAL_RNG_LOCK.acquire()
        saved_cuda = None
        if self._cuda_device is not None:
            saved_cuda = torch.cuda.get_rng_state(self._cuda_device)
            torch.cuda.set_rng_state(self._cuda, self._cuda_device)
        self._saved = (torch.get_rng_state(), saved_cuda)
        torch.set_rng_state(self._cpu)
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._saved is not None
        saved_cpu, saved_cuda = self._saved
        try:
            self._cpu = torch.get_rng_state()
            torch.set_rng_state(saved_cpu)
            if self._cuda_device is not None:
                self._cuda = torch.cuda.get_rng_state(self._cuda_device)
                torch.cuda.set_rng_state(saved_cuda, self._cuda_device)
        finally:
            self._saved = None
            _GLOBAL_RNG_LOCK.release()
