"""Where a trained model goes (checked by :func:`check_output` before any work starts):

* nothing at ``out`` yet: the run's model is saved there, finished or cancelled;
* a model already at ``out``: it is replaced (atomically, the checked bundle moved in place) only
  by a run that finished and whose ONNX export check passed. A cancelled run's best model
  goes to ``NAME.cancelled-YYYYmmdd-HHMMSS.cnnmodel`` next to it, a run whose check failed to
  ``NAME.unverified-YYYYmmdd-HHMMSS.cnnmodel``; the previous model is never touched.
* a run that fails with an error (or is cancelled before its first epoch ends) saves no model.

The resume checkpoint belongs to ``out`` (``.NAME.cnnmodel.resume.pt`` beside it), wherever a
cancelled run's model was put, so ``--resume`` with the same ``--out`` continues that run.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from cnn_desktop.core.models.bundle import BUNDLE_SUFFIX, BundleError, load_bundle
from cnn_desktop.core.training.config import TrainError


def bundle_path(out: str | Path) -> Path:
    """The output bundle folder (``.cnnmodel`` appended when missing)."""
    path = Path(out)
    return path if path.suffix == BUNDLE_SUFFIX else path.with_name(path.name + BUNDLE_SUFFIX)


def checkpoint_path(out: Path) -> Path:
    """Where an interrupted run's state is kept, beside the bundle."""
    return out.with_name(f".{out.name}.resume.pt")


def check_output(out: str | Path) -> Path:
    """Check, before any work, that a run can write its model (and checkpoint) for ``out``.

    Returns:
        The bundle path (``.cnnmodel`` appended when missing).

    Raises:
        TrainError: ``out`` is no name, its folder is missing or is a file, the folder cannot
            be written, or ``out`` exists and is not a model bundle.
    """
    if not Path(out).name or Path(out).name in (".", ".."):
        raise TrainError(f"'{out}' is not a model name; give a path such as models/my-model")
    path = bundle_path(out)
    folder = path.parent
    if not folder.is_dir():
        blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise TrainError(f"cannot save the model in {folder}: {blocker} is a file")
        raise TrainError(f"cannot save the model in {folder}: the folder does not exist")
    if path.exists() and not path.is_dir():
        raise TrainError(f"{path} exists and is not a model bundle folder")
    if path.exists():
        try:
            load_bundle(path)
        except BundleError as exc:
            raise TrainError(
                f"{path} exists and is not a usable model bundle ({exc}); "
                "choose another name or remove it"
            ) from None
    try:  # the only reliable test: create what a save creates (root passes os.access checks)
        os.rmdir(tempfile.mkdtemp(prefix=f".{path.name}.write-test-", dir=folder))
    except OSError as exc:
        raise TrainError(f"cannot write the model to {folder}: {exc.strerror or exc}") from None
    return path


def free_bundle_path(out: str | Path) -> Path:
    """``out`` as a bundle path, or ``NAME-2.cnnmodel``, ``NAME-3.cnnmodel`` … if it is taken."""
    path = bundle_path(out)
    stem, number = path.name[: -len(BUNDLE_SUFFIX)], 2
    while path.exists() or path.is_symlink():
        path = path.with_name(f"{stem}-{number}{BUNDLE_SUFFIX}")
        number += 1
    return path


def kept_bundle_path(out: Path, label: str) -> Path:
    """A new name beside ``out`` for a model that must not replace it:
    ``NAME.<label>-YYYYmmdd-HHMMSS.cnnmodel`` (``-2`` … added if that is taken too)."""
    stem = out.name[: -len(BUNDLE_SUFFIX)] if out.name.endswith(BUNDLE_SUFFIX) else out.name
    return free_bundle_path(out.with_name(f"{stem}.{label}-{time.strftime('%Y%m%d-%H%M%S')}"))
