"""Where a new bundle may be written: checked before any work starts (training, export)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cnn_desktop.core.models.bundle import BUNDLE_SUFFIX, BundleError, load_bundle


def bundle_path(out: str | Path) -> Path:
    """The output bundle folder (``.cnnmodel`` appended when missing)."""
    path = Path(out)
    return path if path.suffix == BUNDLE_SUFFIX else path.with_name(path.name + BUNDLE_SUFFIX)


def check_bundle_target(out: str | Path) -> Path:
    """Check that a model bundle can be written for ``out``.

    Returns:
        The bundle path (``.cnnmodel`` appended when missing).

    Raises:
        BundleError: ``out`` is no name, its folder is missing or is a file, the folder cannot
            be written, or ``out`` exists and is not a model bundle.
    """
    if not Path(out).name or Path(out).name in (".", ".."):
        raise BundleError(f"'{out}' is not a model name; give a path such as models/my-model")
    path = bundle_path(out)
    folder = path.parent
    if not folder.is_dir():
        blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise BundleError(f"cannot save the model in {folder}: {blocker} is a file")
        raise BundleError(f"cannot save the model in {folder}: the folder does not exist")
    if path.exists() and not path.is_dir():
        raise BundleError(f"{path} exists and is not a model bundle folder")
    if path.exists():
        try:
            load_bundle(path)
        except BundleError as exc:
            raise BundleError(
                f"{path} exists and is not a usable model bundle ({exc}); "
                "choose another name or remove it"
            ) from None
    try:  # the only reliable test: create what a save creates (root passes os.access checks)
        os.rmdir(tempfile.mkdtemp(prefix=f".{path.name}.write-test-", dir=folder))
    except OSError as exc:
        raise BundleError(f"cannot write the model to {folder}: {exc.strerror or exc}") from None
    return path
