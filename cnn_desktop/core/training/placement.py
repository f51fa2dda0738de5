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

import time
from pathlib import Path

from cnn_desktop.core.models.bundle import BUNDLE_SUFFIX, BundleError
from cnn_desktop.core.models.target import bundle_path, check_bundle_target
from cnn_desktop.core.training.config import TrainError


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
    try:
        return check_bundle_target(out)
    except BundleError as exc:
        raise TrainError(str(exc)) from None


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
