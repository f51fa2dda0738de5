"""The one task runner of the GUI: every slow job (model load, decode, inference, training,
export) runs on its worker threads; results come back to the UI thread by signals.

A job is a plain function ``fn(context) -> result``. The context carries the core's
``progress(fraction, message)`` callback, a :class:`CancelToken`, ``emit(item)`` to stream
partial results (e.g. one classified image at a time) and ``notify(text)`` for what the user
must read although the job goes on (CUDA failed and the CPU runs the model; the cache folder
cannot be written), which the runner's :attr:`TaskRunner.noticed` hands to the window.

Two pools: *background* jobs (batches, training, exports) can never take the threads of
*interactive* ones (model loads, previews, CAMs, feature maps), so a user's click is answered
while a folder classifies and a model trains. When a job ends, every callback connected to
its handle is disconnected, and the worker drops the job function: nothing a job or its
callbacks captured (a model, a session) outlives it.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QCoreApplication,
    QDeadlineTimer,
    QMetaMethod,
    QObject,
    QRunnable,
    QThreadPool,
    Signal,
)

from cnn_desktop.core.tasks import Cancelled, CancelToken

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.05
BACKGROUND_THREADS = 3
INTERACTIVE_THREADS = 3


@dataclass(frozen=True)
class TaskFailure:
    """Why a job failed: the exception's type and message, and the traceback (for logs).

    The core's own errors (``BundleError``, ``BackendError`` …) carry messages written for the
    user and are shown as they are; any other exception is a bug or a surprise, shown with its
    type (``KeyError: 'x'``) so that the report says what happened.
    """

    type_name: str
    message: str
    traceback: str = ""
    expected: bool = False

    def __str__(self) -> str:
        if self.expected and self.message:
            return self.message
        return f"{self.type_name}: {self.message}" if self.message else self.type_name

    @classmethod
    def from_exception(cls, exc: BaseException) -> TaskFailure:
        """The failure an exception (being handled) describes."""
        ours = type(exc).__module__.startswith("cnn_desktop.")
        return cls(type(exc).__name__, str(exc), traceback.format_exc(), expected=ours)


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

    def notify(self, text: str) -> None:
        """Tell the user something they must read (the job goes on); empty text is ignored."""
        if text:
            self._handle.noticed.emit(text)


class TaskHandle(QObject):
    """A submitted job; connect to its signals, call :meth:`cancel` to stop it.

    Everything connected to it is disconnected once :attr:`finished` has been delivered.
    """

    progressed = Signal(float, str)
    item = Signal(object)
    noticed = Signal(str)
    succeeded = Signal(object)
    failed = Signal(str)  # "TypeName: message" (the whole story is in :attr:`failure`)
    cancelled = Signal()
    finished = Signal()  # always, after exactly one of succeeded / failed / cancelled
    ended = Signal(object)  # the handle itself, after finished: for the runner's bookkeeping

    def __init__(self, title: str, key: str | None, interactive: bool = False) -> None:
        super().__init__()
        self.title = title
        self.key = key
        self.interactive = interactive
        self.token = CancelToken()
        self.done = threading.Event()
        self.failure: TaskFailure | None = None

    def cancel(self) -> None:
        """Ask the job to stop at its next check."""
        self.token.cancel()

    @property
    def is_cancelled(self) -> bool:
        """Whether cancel was requested."""
        return self.token.cancelled

    def disconnect_all(self) -> None:
        """Drop every connection (and with them whatever the connected callbacks hold)."""
        for name, method in _handle_signals():
            if self.isSignalConnected(method):
                getattr(self, name).disconnect()

    def is_connected(self, name: str) -> bool:
        """Whether anything is connected to the signal called ``name``."""
        return any(self.isSignalConnected(m) for n, m in _handle_signals() if n == name)


def _handle_signals() -> list[tuple[str, QMetaMethod]]:
    """(name, meta method) of each signal of :class:`TaskHandle`. Taken from the class's
    meta-object: ``QMetaMethod.fromSignal`` leaks a reference to the handle on every call."""
    if not _SIGNALS:
        meta = TaskHandle.staticMetaObject
        for index in range(meta.methodOffset(), meta.methodCount()):
            method = meta.method(index)
            if method.methodType() == QMetaMethod.MethodType.Signal:
                _SIGNALS.append((bytes(method.name().data()).decode(), method))
    return _SIGNALS


_SIGNALS: list[tuple[str, QMetaMethod]] = []


class _Job(QRunnable):
    def __init__(self, handle: TaskHandle, fn: Callable[[TaskContext], Any]) -> None:
        super().__init__()
        self.handle: TaskHandle | None = handle
        self.fn: Callable[[TaskContext], Any] | None = fn
        self.setAutoDelete(True)

    def run(self) -> None:
        handle, fn = self.handle, self.fn
        self.handle = self.fn = None  # the job's closure must not outlive its run
        assert handle is not None and fn is not None
        try:
            handle.token.raise_if_cancelled()
            result = fn(TaskContext(handle))
            del fn
            if handle.token.cancelled:
                raise Cancelled("cancelled")
        except Cancelled:
            handle.cancelled.emit()
        except Exception as exc:  # any job failure is shown to the user, never swallowed
            handle.failure = TaskFailure.from_exception(exc)
            if handle.failure.expected:  # a bad file or option: its message says it all
                log.info("task %r failed: %s", handle.title, handle.failure)
            else:
                log.error("task %r failed:\n%s", handle.title, handle.failure.traceback)
            handle.failed.emit(str(handle.failure))
        else:
            handle.succeeded.emit(result)
            del result
        finally:
            handle.done.set()
            handle.finished.emit()
            handle.ended.emit(handle)


class TaskRunner(QObject):
    """Runs jobs on two thread pools (background, interactive) and keeps track of them."""

    busy_changed = Signal(bool)
    task_failed = Signal(str, str)  # title, "TypeName: message"
    noticed = Signal(str)  # a job's notice (see TaskContext.notify), for the notification area

    def __init__(
        self,
        background_threads: int = BACKGROUND_THREADS,
        interactive_threads: int = INTERACTIVE_THREADS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._pools = {False: QThreadPool(self), True: QThreadPool(self)}
        self._pools[False].setMaxThreadCount(background_threads)
        self._pools[True].setMaxThreadCount(interactive_threads)
        self._active: dict[int, TaskHandle] = {}
        self._stopped = False

    def submit(
        self,
        title: str,
        fn: Callable[[TaskContext], Any],
        *,
        key: str | None = None,
        interactive: bool = False,
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
            interactive: Something the user waits for (a model load, a preview, a CAM): it
                runs on threads that background jobs (batches, training, exports) never take.
            on_result, on_item, on_progress, on_error, on_finished: UI-thread callbacks.
                ``on_error`` receives "TypeName: message"; without it a failure goes to
                :attr:`task_failed`.
        """
        if key is not None:
            self.cancel_key(key)
        handle = TaskHandle(title, key, interactive)
        if self._stopped:
            handle.cancel()  # runs at once as cancelled: its callbacks still learn it ended
        if on_result:
            handle.succeeded.connect(on_result)
        if on_item:
            handle.item.connect(on_item)
        if on_progress:
            handle.progressed.connect(on_progress)
        if on_error:
            handle.failed.connect(on_error)
        if on_finished:
            handle.finished.connect(on_finished)
        handle.noticed.connect(self.noticed)
        handle.ended.connect(self._forget)
        was_busy = bool(self._active)
        self._active[id(handle)] = handle
        self._pools[interactive].start(_Job(handle, fn))
        if not was_busy:
            self.busy_changed.emit(True)
        return handle

    def _forget(self, handle: TaskHandle) -> None:
        if handle.failure is not None and not handle.is_connected("failed"):
            self.task_failed.emit(handle.title, str(handle.failure))
        handle.disconnect_all()
        self._active.pop(id(handle), None)
        if not self._active:
            self.busy_changed.emit(False)

    @property
    def active(self) -> list[TaskHandle]:
        """Jobs submitted and not yet finished."""
        return list(self._active.values())

    def cancel_key(self, key: str) -> None:
        """Ask every running job submitted with ``key`` to stop."""
        for handle in self._active.values():
            if handle.key == key:
                handle.cancel()

    def cancel_all(self) -> None:
        """Ask every running job to stop."""
        for handle in self._active.values():
            handle.cancel()

    def stop(self) -> None:
        """Cancel every job, and from now on every job submitted (the window is closing)."""
        self._stopped = True
        self.cancel_all()

    def wait_for_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until every job's thread is done and its signals delivered (for tests and
        scripts; the window never blocks: it waits for :attr:`busy_changed`). True if idle."""
        deadline = QDeadlineTimer(int(timeout_s * 1000))
        while True:
            finished = all(pool.waitForDone(deadline) for pool in self._pools.values())
            QCoreApplication.processEvents()
            if not finished or not self._active or deadline.hasExpired():
                return finished and not self._active

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Stop everything (see :meth:`stop`) and wait for the workers to end."""
        self.stop()
        return self.wait_for_idle(timeout_s)
