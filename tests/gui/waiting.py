"""Waiting for the window's background work to be really over, instead of sleeping.

A fixed sleep before "nothing more arrived" passes whenever the late result is slower than
the sleep. Here the test waits until no job is listed, every worker thread of the runner and
of the classification pipeline has ended, and the events they posted have been delivered:
from then on nothing can arrive.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication

from cnn_desktop.gui.main_window import MainWindow
from tests.gui.conftest import pipeline_threads_alive

SETTLE_TIMEOUT_MS = 30_000


def settle(qtbot, window: MainWindow, timeout_ms: int = SETTLE_TIMEOUT_MS) -> None:
    """Return once every job of ``window`` is over and all it sent has been delivered."""
    qtbot.waitUntil(lambda: not window.runner.active, timeout=timeout_ms)
    assert window.runner.wait_for_idle(timeout_ms / 1000), "a worker thread is still running"
    qtbot.waitUntil(lambda: not pipeline_threads_alive(), timeout=timeout_ms)
    QCoreApplication.sendPostedEvents()
    QCoreApplication.processEvents()
    assert not window.runner.active, "delivering the last events started new work"
