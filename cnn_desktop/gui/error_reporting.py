"""Exceptions nobody caught (in a slot, on any thread) are logged with their traceback and
shown in the window's notification area, never lost.

Qt prints an exception raised in a slot through ``sys.excepthook`` and carries on; a thread's
unhandled exception goes to ``threading.excepthook``. Both hooks log the traceback and emit
:attr:`ErrorReporter.reported` (queued to the UI thread), then hand the exception to the hook
that was installed before (a test harness's, say), unless that is Python's default printer.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


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
