"""Versions, CPU, ONNX Runtime providers and torch devices, for ``info`` and Help → About.

Imports torch (lazily): call it off the UI thread.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from typing import Any

from cnn_desktop.core.devices import cpu_threads, onnx_providers


def torch_devices() -> dict[str, Any]:
    """Torch version and accelerators (imports torch; call off the UI thread)."""
    try:
        import torch
    except ImportError:
        return {"installed": False}
    info: dict[str, Any] = {
        "installed": True,
        "version": torch.__version__,
        "cuda_built": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [],
        "mps_available": bool(
            getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
        ),
    }
    if info["cuda_available"]:
        info["cuda_devices"] = [
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ]
    return info


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def system_info(include_torch: bool = True) -> dict[str, Any]:
    """Versions, CPU, ONNX Runtime providers (available and working) and torch devices."""
    from cnn_desktop import __version__

    info: dict[str, Any] = {
        "cnn_desktop": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_threads": cpu_threads(),
        "packages": {
            name: _version(name)
            for name in (
                "onnxruntime-gpu",
                "onnxruntime",
                "onnx",
                "numpy",
                "pillow",
                "PySide6-Essentials",
                "torch",
                "torchvision",
                "timm",
            )
        },
        "onnx_providers": [
            {"name": p.name, "working": p.working, "detail": p.detail} for p in onnx_providers()
        ],
    }
    if include_torch:
        info["torch"] = torch_devices()
    return info
