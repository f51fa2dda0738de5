"""What the CLI and the window do to a recorded run's model: delete it (only a real bundle),
and choose where a re-run saves."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from cnn_desktop.core.models.bundle import BUNDLE_SUFFIX, BundleError, load_bundle
from cnn_desktop.core.training.placement import free_bundle_path


def delete_run_bundle(record: dict[str, Any]) -> str | None:
    """Remove the model a run saved, after checking that it is a model bundle.

    Returns:
        The folder removed; None when the run saved none or it is gone already.

    Raises:
        BundleError: The path holds something that is not a model bundle (nothing deleted).
        OSError: It could not be removed.
    """
    bundle = Path(record["bundle"]) if record.get("bundle") else None
    if bundle is None or not bundle.exists():
        return None
    if bundle.suffix != BUNDLE_SUFFIX or bundle.is_symlink():
        raise BundleError(f"{bundle} is not a model bundle folder")
    load_bundle(bundle)  # never delete a folder that is not a model
    shutil.rmtree(bundle)
    return str(bundle)


def rerun_output(record: dict[str, Any]) -> str:
    """Where a re-run saves: ``<model>-rerun.cnnmodel`` beside the run's model (a free name:
    a re-run never replaces the original)."""
    original = Path(record.get("bundle") or record.get("out") or "model")
    beside = original.with_name(original.name.removesuffix(BUNDLE_SUFFIX) + "-rerun")
    return str(free_bundle_path(beside.with_suffix(BUNDLE_SUFFIX)))
