"""What every subcommand shares: exit codes and the one-line error."""

from __future__ import annotations

import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def fail(message: str, code: int) -> int:
    """Print ``cnn-desktop: error: MESSAGE`` on stderr and return the exit code ``code``."""
    print(f"cnn-desktop: error: {message}", file=sys.stderr)
    return code


def open_model(model: str | None, backend: str, device: str) -> tuple[Any, Any]:
    """The bundle ``--model`` names (the built-in model when None, its first-run message on
    stderr) and a classifier for it on ``backend``/``device``.

    Raises:
        BundleError, PretrainedError, BackendError: The model cannot be opened there.
    """
    from cnn_desktop.core.inference import open_classifier
    from cnn_desktop.core.models import default_model_bundle, load_bundle

    if model:
        bundle = load_bundle(model)
    else:
        bundle = default_model_bundle(lambda f, m: print(m, file=sys.stderr) if f == 0 else None)
    return bundle, open_classifier(bundle, backend, device)
