"""Versions of installed packages, also in a frozen app that carries no package metadata."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util


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
