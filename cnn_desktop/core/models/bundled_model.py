"""The built-in model shipped inside a packaged app, already exported to ONNX.

A packaged (PyInstaller) build carries the default model's bundle in its data folder
(``sys._MEIPASS``), made at build time, so the app never exports it (nor needs torch) on a
user's machine and never writes into its own, possibly read-only, install folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGED_BUNDLE = Path("cnn_desktop_models") / "default.cnnmodel"
"""Where the bundle lies, relative to the packaged app's data folder."""


def packaged_default_bundle_path() -> Path | None:
    """The packaged default-model bundle, or None when not running as a packaged app."""
    if not getattr(sys, "frozen", False):
        return None
    data_folder = Path(getattr(sys, "_MEIPASS", Path(sys.executable).resolve().parent))
    candidate = data_folder / PACKAGED_BUNDLE
    return candidate if candidate.is_dir() else None
