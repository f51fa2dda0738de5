"""The one task runner of the GUI: every slow job (model load, decode, inference, training,
export) runs on its worker threads; results come back to the UI thread by signals.

A job is a plain function ``fn(context) -> result``. The context carries the core's
``progress(fraction, message)`` callback, a :class:`CancelToken`, and ``emit(item)`` to stream
partial results (e.g. one classified image at a time).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QObject, QRunnable, QThreadPool, Signal

from cnn_desktop.core.tasks import Cancelled, CancelToken

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.05


class TaskContext:
    """What a job sees of the runner: progress, cancellation and streaming."""

    def __init__(self, handle: TaskHandle) -> None:
        self._handle = handle
        self.cancel = handle.token
        self._last_progress = 0.0

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (throttled so the UI thread is never flooded)."""
        now = time.monotonic()
        if fraction >= 1.0 or now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self._handle.progressed.emit(float(fraction), message)

    def emit(self, item: object) -> None:
        """Send a partial result to the UI thread."""
        self._handle.item.emit(item)


class TaskHandle(QObject):
    """A submitted job; connect to its signals, call :meth:`cancel` to stop it."""

    progressed = Signal(float, str)
    item = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()  # always, after exactly one of succeeded / failed / cancelled

    def __init__(self, title: str, key: str | None) -> None:
        super().__init__()
        self.title = title
        self.key = key
        self.token = CancelToken()
        self.done = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at its next check."""
        self.token.cancel()

    @property
    def is_cancelled(self) -> bool:
        """Whether cancel was requested."""
        return self.token.cancelled


class _Job(QRunnable):
    def __init__(self, handle: TaskHandle, fn: Callable[[TaskContext], Any]) -> None:
        super().__init__()
        self.handle = handle
        self.fn = fn
        self.setAutoDelete(True)

    def run(self) -> None:
        handle = self.handle
        try:
            handle.token.raise_if_cancelled()
            result = self.fn(TaskContext(handle))
            if handle.token.cancelled:
                raise Cancelled("cancelled")
        except Cancelled:
            handle.cancelled.emit()
        except Exception as exc:  # any job failure is shown to the user, never swallowed
            log.error("task %r failed:\n%s", handle.title, traceback.format_exc())
            handle.failed.emit(str(exc) or type(exc).__name__)
        else:
            handle.succeeded.emit(result)
        finally:
            handle.done.set()
            handle.finished.emit()


class TaskRunner(QObject):
    """Runs jobs on a thread pool and keeps track of them."""

    busy_changed = Signal(bool)
    task_failed = Signal(str, str)  # title, message

    def __init__(self, max_threads: int = 4, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._active: dict[int, TaskHandle] = {}

    def submit(
        self,
        title: str,
        fn: Callable[[TaskContext], Any],
        *,
        key: str | None = None,
        on_result: Callable[[Any], None] | None = None,
        on_item: Callable[[Any], None] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> TaskHandle:
        """Start ``fn`` on a worker thread.

        Args:
            title: What the job does, for messages.
            fn: The job; receives a :class:`TaskContext`.
            key: Jobs sharing a key replace each other: the older one is cancelled.
            on_result, on_item, on_progress, on_error, on_finished: UI-thread callbacks.
                Without ``on_error`` a failure goes to :attr:`task_failed`.
        """
        if key is not None:
            for other in self._active.values():
                if other.key == key:
                    other.cancel()
        handle = TaskHandle(title, key)
        if on_result:
            handle.succeeded.connect(on_result)
        if on_item:
            handle.item.connect(on_item)
        if on_progress:
            handle.progressed.connect(on_progress)
        handle.failed.connect(on_error or (lambda message: self.task_failed.emit(title, message)))
        if on_finished:
            handle.finished.connect(on_finished)
        handle.finished.connect(lambda: self._forget(handle))
        was_busy = bool(self._active)
        self._active[id(handle)] = handle
        self._pool.start(_Job(handle, fn))
        if not was_busy:
            self.busy_changed.emit(True)
        return handle

    def _forget(self, handle: TaskHandle) -> None:
        self._active.pop(id(handle), None)
        if not self._active:
            self.busy_changed.emit(False)

    @property
    def active(self) -> list[TaskHandle]:
        """Jobs submitted and not yet finished."""
        return list(self._active.values())

    def cancel_all(self) -> None:
        """Ask every running job to stop."""
        for handle in self._active.values():
            handle.cancel()

    def wait_for_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until every job's thread is done (for shutdown and tests); True if idle."""
        finished = self._pool.waitForDone(QDeadlineTimer(int(timeout_s * 1000)))
        QCoreApplication.processEvents()
        return finished

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Cancel everything and wait for the workers to stop."""
        self.cancel_all()
        return self.wait_for_idle(timeout_s)
