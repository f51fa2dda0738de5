"""Exceptions nobody caught (in a slot, on any thread) are logged with their traceback and
shown in the window's notification area, never lost.

Qt prints an exception raised in a slot through ``sys.excepthook`` and carries on; a thread's
unhandled exception goes to ``threading.excepthook``. Both hooks log the traceback and emit
:attr:`ErrorReporter.reported` (queued to the UI thread), then hand the exception to the hook
that was installed before (a test harness's, say), unless that is Python's default printer.

The files of a batch that could not be classified are reported together
(:class:`FailedFiles`): one summary in the notification bar, updated at most every
:data:`FAILURE_REFRESH_MS`, and the first :data:`MAX_FAILURE_LINES` files with their reasons
under it in *Details*. Each file's own error stays in the gallery and the results table.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections import Counter
from types import TracebackType
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

if TYPE_CHECKING:
    from cnn_desktop.gui.widgets.notifications import NotificationArea

log = logging.getLogger(__name__)
FAILURE_REFRESH_MS = 1000
"""How often, at most, a batch's failure summary is rewritten after its first failure."""
MAX_FAILURE_LINES = 200
"""Failed files listed one by one in *Details*, per batch; the rest are counted."""
NAMED_UP_TO = 3
"""Up to this many failed files, the summary names each one."""
MAX_REASONS = 3
"""Reasons counted one by one in the summary; the others are counted together."""


class ErrorReporter(QObject):
    """Emits one line and the traceback for every uncaught exception."""

    reported = Signal(str, str)  # "Unexpected error: TypeName: message", traceback


_reporter: ErrorReporter | None = None
_previous_sys_hook = sys.__excepthook__
_previous_thread_hook = threading.__excepthook__


def install_exception_hooks() -> ErrorReporter:
    """Install the hooks (once; call it on the UI thread) and return the reporter to connect."""
    global _reporter, _previous_sys_hook, _previous_thread_hook
    if _reporter is None:
        _reporter = ErrorReporter()
    if sys.excepthook is not _sys_hook:
        _previous_sys_hook, sys.excepthook = sys.excepthook, _sys_hook
    if threading.excepthook is not _thread_hook:
        _previous_thread_hook, threading.excepthook = threading.excepthook, _thread_hook
    return _reporter


def report_exception(
    kind: type[BaseException],
    value: BaseException,
    trace: TracebackType | None,
    where: str = "",
) -> None:
    """Log an exception's traceback and tell the reporter (from any thread)."""
    text = "".join(traceback.format_exception(kind, value, trace))
    log.error("Unexpected error%s:\n%s", where, text)
    message = f"{kind.__name__}: {value}" if str(value) else kind.__name__
    if _reporter is not None:
        _reporter.reported.emit(f"Unexpected error{where}: {message}", text)


def _sys_hook(kind: type[BaseException], value: BaseException, trace: TracebackType | None) -> None:
    if issubclass(kind, Exception):
        report_exception(kind, value, trace)
        if _previous_sys_hook is sys.__excepthook__:
            return  # logged already; the default hook would print it a second time
    _previous_sys_hook(kind, value, trace)


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None and issubclass(args.exc_type, Exception):
        name = args.thread.name if args.thread is not None else "a thread"
        report_exception(args.exc_type, args.exc_value, args.exc_traceback, f" in {name}")
        if _previous_thread_hook is threading.__excepthook__:
            return
    _previous_thread_hook(args)


class FailedFiles:
    """The files of one batch that could not be classified, told as one updating notice.

    Call :meth:`add` for each file (on the UI thread) and :meth:`finish` when the batch ends.
    The first :data:`NAMED_UP_TO` failures show at once; later ones are gathered and shown
    together at most every :data:`FAILURE_REFRESH_MS`, and once more when the batch ends.
    """

    def __init__(self, notifications: NotificationArea) -> None:
        self._notice = notifications.updating("error")
        self._first: list[tuple[str, str]] = []  # (name, reason) of the first files
        self._reasons: Counter[str] = Counter()
        self.count = 0
        """Files added so far."""
        self._unshown = False
        self._timer = QTimer(notifications)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FAILURE_REFRESH_MS)
        self._timer.timeout.connect(self.flush)

    def add(self, name: str, reason: str) -> None:
        """Count one file that failed; ``name`` is what the user knows it by."""
        self.count += 1
        self._reasons[_reason_kind(reason)] += 1
        if len(self._first) < MAX_FAILURE_LINES:
            self._first.append((name, reason))
        self._unshown = True
        if self.count <= NAMED_UP_TO:  # a few files: each one is named at once
            self.flush()
        elif not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Show what was added since the last update (if anything was)."""
        self._timer.stop()
        if not self._unshown:
            return
        self._unshown = False
        lines = [f"{name}: {reason}" for name, reason in self._first] if self.count > 1 else []
        left_out = self.count - len(self._first)
        more = f"… and {left_out} more (each file's error is in the results)" if left_out else ""
        self._notice.update(self.summary(), lines, more)

    def finish(self) -> None:
        """The batch has ended: show the final count; nothing more will be added."""
        self.flush()
        self._timer.deleteLater()

    def summary(self) -> str:
        """One line: ``"37 files could not be classified: 30 image is truncated or corrupt, 7
        not an image file"`` (naming the files when there are only a few)."""
        if self.count == 1:
            name, reason = self._first[0]
            return f"{name}: {reason}"
        head = f"{self.count} files could not be classified: "
        if self.count <= NAMED_UP_TO:
            return head + ", ".join(f"{name} ({_reason_kind(r)})" for name, r in self._first)
        common = self._reasons.most_common(MAX_REASONS)
        parts = [f"{count} {reason}" for reason, count in common]
        others = self.count - sum(count for _, count in common)
        parts += [f"{others} for other reasons"] if others else []
        return head + ", ".join(parts)


def _reason_kind(reason: str) -> str:
    """A reason without its parenthesised detail: ``"not an image file (or a format …)"``
    counts as ``"not an image file"``."""
    return reason.split(" (", 1)[0].strip() or "unknown error"
