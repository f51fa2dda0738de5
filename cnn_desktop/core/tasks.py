"""Cancellation and progress reporting shared by every long-running core function.

Core functions take a ``progress(fraction, message)`` callback and a :class:`CancelToken`;
they call :meth:`CancelToken.raise_if_cancelled` between units of work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

ProgressCallback = Callable[[float, str], None]


class Cancelled(Exception):
    """Raised by a core function when its :class:`CancelToken` was cancelled."""


class CancelToken:
    """A thread-safe flag a caller sets to ask a running task to stop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the task to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` has been called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` if the token was cancelled."""
        if self._event.is_set():
            raise Cancelled("cancelled")


def no_progress(fraction: float, message: str) -> None:
    """A progress callback that ignores every report."""
