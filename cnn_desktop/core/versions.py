"""Versions of installed packages, also in a frozen app that carries no package metadata."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys


def installed_version(distribution: str, module_name: str) -> str | None:
    """A package's version from its metadata, else (no metadata, as in a frozen app) from
    its module's ``__version__``.

    Returns:
        The version, ``unknown`` when the module is importable but says none, or None when
        the package is not installed.
    """
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        if importlib.util.find_spec(module_name) is None:
            return None
        module = importlib.import_module(module_name)
    except (ImportError, ValueError):
        return None
    return str(getattr(module, "__version__", "unknown"))


NO_TORCH = "this installation of cnn-desktop has no PyTorch (the lite build)"


def torch_installed() -> bool:
    """Whether PyTorch can be imported, found without importing it (that takes seconds).

    Full and scratch training, Grad-CAM and the PyTorch backend need it; classification,
    feature maps, the gradient-free CAM and head training do not.
    """
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None  # None: imports of it are blocked
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False
