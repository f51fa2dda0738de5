"""The main window's start and end: saved geometry, tidying the caches, reporting uncaught
exceptions, and closing without ever blocking the event loop.

A mixin of :class:`cnn_desktop.gui.main_window.MainWindow`; it relies on the window's
``settings``, ``runner``, ``notifications``, ``splitter``, ``train_panel`` and
``model_label``.

Closing while a model trains asks first. Then every job is cancelled (a training run saves its
best model so far) and the window closes by itself once the last one has stopped; until then
the event loop runs, so the window keeps painting and says what it waits for.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QByteArray, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow, QMessageBox

from cnn_desktop.core.models import cache_dir
from cnn_desktop.gui import jobs
from cnn_desktop.gui.commands import PASTED_PREFIX, pasted_folder
from cnn_desktop.gui.error_reporting import install_exception_hooks
from cnn_desktop.gui.state import DAY_S, GB, MB

STOP_TRAINING_QUESTION = (
    "A model is being trained. Stop training and quit?\n\n"
    "The best model so far is saved before the window closes."
)


class WindowLifetime:
    """Start-up chores and a close that asks during training and never blocks."""

    settings: Any
    runner: Any
    notifications: Any
    splitter: Any
    train_panel: Any
    model_label: Any

    def _start_lifetime(self) -> None:
        """Restore the geometry, report uncaught exceptions here, tidy the caches."""
        self._closing = False
        self._ready_to_close = False
        self._restore_geometry()
        install_exception_hooks().reported.connect(self.notifications.error)
        self.runner.noticed.connect(self.notifications.info)
        self.runner.busy_changed.connect(self._close_when_idle)
        settings = self.settings
        self.runner.submit(
            "Tidy caches",
            jobs.tidy_caches(
                pasted_folder(),
                PASTED_PREFIX,
                int(settings.pasted_max_mb * MB),
                settings.pasted_max_age_days * DAY_S,
                cache_dir() / "embeddings",
                int(settings.embedding_cache_max_gb * GB),
            ),
        )

    def _restore_geometry(self) -> None:
        geometry = self.settings.qsettings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        splitter_state = self.settings.qsettings.value("window/splitter")
        if isinstance(splitter_state, QByteArray):
            self.splitter.restoreState(splitter_state)

    @property
    def is_closing(self) -> bool:
        """Whether the window waits for its jobs to stop before it closes."""
        return self._closing

    def confirm_stop_training(self) -> bool:
        """Ask whether to stop the running training and quit."""
        answer = QMessageBox.question(
            self,
            "Quit while training?",
            STOP_TRAINING_QUESTION,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._ready_to_close or (not self._closing and not self.runner.active):
            self.settings.qsettings.setValue("window/geometry", self.saveGeometry())
            self.settings.qsettings.setValue("window/splitter", self.splitter.saveState())
            self.runner.stop()
            QMainWindow.closeEvent(self, event)
            return
        event.ignore()
        if self._closing:
            return
        if self.train_panel.handle is not None and not self.confirm_stop_training():
            return
        self._closing = True
        self.runner.stop()  # cancels every job, and any a finishing job would start
        training = self.train_panel.handle is not None
        waiting = "saving the best model so far" if training else "stopping running jobs"
        self.model_label.setText(f"Closing: {waiting}…")

    def _close_when_idle(self, busy: bool) -> None:
        if self._closing and not busy:
            self._ready_to_close = True
            QTimer.singleShot(0, self.close)
