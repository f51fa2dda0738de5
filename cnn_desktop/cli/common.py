"""What every subcommand shares: exit codes, the one-line error and the warning line."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def fail(message: str, code: int) -> int:
    """Print ``cnn-desktop: error: MESSAGE`` on stderr and return the exit code ``code``."""
    print(f"cnn-desktop: error: {message}", file=sys.stderr)
    return code


def warning_line(message: str) -> str:
    """``cnn-desktop: warning: MESSAGE``: how a notice (the work goes on, differently than
    asked, e.g. on the CPU because CUDA failed) is printed on stderr."""
    return f"cnn-desktop: warning: {message}"


@contextmanager
def first_ctrl_c_cancels(cancel: Any, message: str) -> Iterator[None]:
    """While inside: the first Ctrl+C sets ``cancel`` (the work stops at its next step and
    keeps what it has) and prints ``message``; a second one interrupts at once."""

    def on_interrupt(_signum: int, _frame: object) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        print(f"\n{message}", file=sys.stderr)
        cancel.cancel()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def open_model(model: str | None, backend: str, device: str) -> tuple[Any, Any]:
    """The bundle ``--model`` names (the built-in model when None, its first-run message on
    stderr) and a classifier for it on ``backend``/``device``; the classifier's notice (e.g.
    CUDA failed, the CPU runs the model) goes to stderr as a warning line.

    Raises:
        BundleError, PretrainedError, BackendError: The model cannot be opened there.
    """
    from cnn_desktop.core.inference import open_classifier
    from cnn_desktop.core.models import default_model_bundle, load_bundle

    if model:
        bundle = load_bundle(model)
    else:
        bundle = default_model_bundle(lambda f, m: print(m, file=sys.stderr) if f == 0 else None)
    classifier = open_classifier(bundle, backend, device)
    if classifier.notice:
        print(warning_line(classifier.notice), file=sys.stderr)
    return bundle, classifier
