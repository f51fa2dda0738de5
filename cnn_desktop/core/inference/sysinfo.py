"""Versions, CPU, ONNX Runtime providers and torch devices, for ``info`` and Help → About.

Imports torch (lazily): call it off the UI thread.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import platform
import sys
from typing import Any

from cnn_desktop.core.inference.devices import cpu_threads, onnx_providers
from cnn_desktop.core.versions import installed_version


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


# Distribution name -> the module it installs, for when there is no package metadata.
_MODULES = {
    "onnxruntime-gpu": "onnxruntime",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "numpy": "numpy",
    "pillow": "PIL",
    "PySide6-Essentials": "PySide6",
    "torch": "torch",
    "torchvision": "torchvision",
    "timm": "timm",
}


def package_version(package: str) -> str:
    """The version of one of the packages ``info`` lists, or ``not installed``."""
    module_name = _MODULES[package]
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        if module_name == "onnxruntime" and not _is_onnxruntime_build(package):
            return "not installed"
    return installed_version(package, module_name) or "not installed"


def _is_onnxruntime_build(package: str) -> bool:
    """Whether the importable onnxruntime is the GPU build for ``onnxruntime-gpu`` or the CPU
    build for ``onnxruntime`` (both install the same module)."""
    try:
        import onnxruntime
    except ImportError:
        return False
    gpu = onnxruntime.get_device() == "GPU"
    return gpu == (package == "onnxruntime-gpu")


def system_info(include_torch: bool = True) -> dict[str, Any]:
    """Versions, CPU, ONNX Runtime providers (available and working) and torch devices."""
    from cnn_desktop import __version__

    info: dict[str, Any] = {
        "cnn_desktop": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_threads": cpu_threads(),
        "packages": {name: package_version(name) for name in _MODULES},
        "onnx_providers": [
            {"name": p.name, "working": p.working, "detail": p.detail} for p in onnx_providers()
        ],
    }
    if include_torch:
        info["torch"] = torch_devices()
    return info
