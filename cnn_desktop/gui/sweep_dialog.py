"""The Train tab's *Sweep…*: an Optuna search over the chosen options, on the task runner.

The Train tab's options are the sweep's centre and its trial 0; the dialog chooses how many
trials, what to vary and, optionally, a journal file shared with other processes or machines
running the same study (``cnn-desktop sweep --storage``). Each trial is a recorded run; the
table shows every trial as it ends, and the best model so far is at the Train tab's *Save to*
path, which *Use this model* opens.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_desktop.core.runs import SWEEPABLE, SweepResult, run_sweep
from cnn_desktop.core.training import TrainConfig, TrainEvent
from cnn_desktop.gui.runner import TaskContext, TaskHandle, TaskRunner

DEFAULT_TRIALS = 8
CHECKED = ("lr", "epochs", "batch_size", "augment")
HEAD_SKIPS = ("augment",)  # head mode learns from cached embeddings: no augmentation
COLUMNS = ("Trial", "State", "Parameters", "Val acc", "Run")


def sweep_job(
    context: TaskContext, data: str, out: str, base: TrainConfig, trials: int, params: Any,
    storage: str | None, tracking_uri: str | None = None,
) -> SweepResult:  # fmt: skip
    """The sweep on a worker thread: each trial's progress and end go to the UI, then the
    sweep's result."""

    def forward(number: int, event: TrainEvent) -> None:
        if event.kind in ("done", "cancelled", "notice", "scan", "epoch"):
            context.emit((number, event))

    result = run_sweep(
        data, out, base, trials, params, storage=storage, tracking_uri=tracking_uri,
        on_event=forward, cancel=context.cancel,
    )  # fmt: skip
    context.emit(result)  # as an item: a stopped sweep's job ends as cancelled, with no result
    return result


class SweepDialog(QDialog):
    """Choose the sweep, start it, watch the trials, open the best model."""

    use_model = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        data: str,
        out: str,
        base: TrainConfig,
        parent: QWidget | None,
        tracking_uri: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.tracking_uri = tracking_uri  # the Runs tab's MLflow store, if any
        self.setWindowTitle("Sweep hyperparameters")
        self.runner, self.data, self.out, self.base = runner, data, out, base
        self.handle: TaskHandle | None = None
        self.result: SweepResult | None = None
        self.trials = QSpinBox(self, minimum=1, maximum=500, value=DEFAULT_TRIALS)
        self.checks = {name: QCheckBox(name, self) for name in SWEEPABLE}
        self.skipped = HEAD_SKIPS if base.mode == "head" else ()
        for name, box in self.checks.items():
            box.setChecked(name in CHECKED and name not in self.skipped)
            box.setEnabled(name not in self.skipped)
        self.storage = QLineEdit(self, placeholderText="this window only")
        browse = QPushButton("Journal file…", self, clicked=self._choose_storage)
        form = QFormLayout()
        form.addRow("Trials", self.trials)
        row = QHBoxLayout()
        for box in self.checks.values():
            row.addWidget(box)
        form.addRow("Vary", row)
        shared = QHBoxLayout()
        shared.addWidget(self.storage, 1)
        shared.addWidget(browse)
        form.addRow("Shared study", shared)
        form.addRow("Data", QLabel(data, self))
        form.addRow("Best model to", QLabel(out, self))
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        header = self.table.horizontalHeader()
        for column in range(len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("Parameters"), QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.progress = QProgressBar(self, maximum=DEFAULT_TRIALS, value=0)
        self.status = QLabel("Trial 0 is the Train tab's options; Optuna proposes the rest.", self)
        self.status.setWordWrap(True)
        self.start_button = QPushButton("Start sweep", self, clicked=self.start)
        self.cancel_button = QPushButton("Stop", self, clicked=self.cancel, enabled=False)
        self.cancel_button.setToolTip("Stop the current trial; the finished ones and the best stay")
        self.use_button = QPushButton("Use best model", self, enabled=False)
        self.use_button.clicked.connect(lambda: self.use_model.emit(str(self.result.out)))
        buttons = QHBoxLayout()
        for button in (self.start_button, self.cancel_button, self.use_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(QPushButton("Close", self, clicked=self.close))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(760, 460)

    def params(self) -> tuple[str, ...]:
        """What the sweep varies."""
        return tuple(name for name, box in self.checks.items() if box.isChecked())

    def start(self) -> TaskHandle | None:
        """Run the sweep in the background (None when nothing is chosen to vary)."""
        params = self.params()
        if not params or self.handle is not None:
            self.status.setText("Choose at least one option to vary.")
            return None
        trials, storage = self.trials.value(), self.storage.text().strip() or None
        self.table.setRowCount(0)
        self.progress.setMaximum(trials)
        self.progress.setValue(0)
        self.status.setText("Starting trial 0…")
        self.handle = self.runner.submit(
            "Sweep",
            lambda context: sweep_job(
                context, self.data, self.out, self.base, trials, params, storage, self.tracking_uri
            ),
            key="train",  # never at the same time as a training run
            on_item=self._on_item,
            on_error=self._failed,
            on_finished=self._finished,
        )
        self._set_running(True)
        return self.handle

    def cancel(self) -> None:
        """Stop after the current trial's step; what finished stays."""
        if self.handle is not None:
            self.handle.cancel()
            self.status.setText("Stopping: the finished trials and the best model stay…")

    def closeEvent(self, event: Any) -> None:  # a closed dialog stops its sweep
        self.cancel()
        super().closeEvent(event)

    def _on_item(self, item: tuple[int, TrainEvent] | SweepResult) -> None:
        if isinstance(item, SweepResult):
            self._done(item)
            return
        number, event = item
        if event.kind == "scan":
            self.status.setText(f"Trial {number}: running…")
        elif event.kind == "epoch":
            self.status.setText(
                f"Trial {number}: epoch {event.epoch}/{event.epochs}, "
                f"val acc {_percent(event.val_accuracy)}"
            )
        elif event.kind == "notice":
            self.status.setText(f"Trial {number}: {event.message}")
        elif event.result is not None:
            value = event.result.metrics.get("training", {}).get("best_val_accuracy")
            state = "stopped" if event.kind == "cancelled" else "finished"
            self._set_row(number, state, {}, value, event.data.get("run_id"))
            self.progress.setValue(min(self.progress.maximum(), self.progress.value() + 1))

    def _done(self, result: SweepResult) -> None:
        self.result = result
        self.table.setRowCount(0)
        for trial in result.trials:
            self._set_row(trial.number, trial.state, trial.params, trial.value, trial.run_id)
        self.progress.setValue(self.progress.maximum())
        if result.best is None:
            self.status.setText("No trial finished; no model was kept.")
            return
        stopped = "Stopped. " if result.interrupted else ""
        self.status.setText(
            f"{stopped}Best: trial {result.best.number}, val acc {_percent(result.best.value)}"
            f" — the model is at {result.out}"
        )
        self.use_button.setEnabled(True)

    def _failed(self, text: str) -> None:
        self.status.setText(f"Sweep failed: {text}")

    def _finished(self) -> None:
        self.handle = None
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.trials.setEnabled(not running)
        self.storage.setEnabled(not running)
        for name, box in self.checks.items():
            box.setEnabled(not running and name not in self.skipped)

    def _set_row(self, number: int, state: str, params: dict, value: Any, run: Any) -> None:
        rows = [self.table.item(r, 0).text() for r in range(self.table.rowCount())]
        row = rows.index(str(number)) if str(number) in rows else self.table.rowCount()
        if row == self.table.rowCount():
            self.table.insertRow(row)
        best = self.result is not None and self.result.best and self.result.best.number == number
        text = ", ".join(f"{k} {_short(v)}" for k, v in params.items())
        for column, cell in enumerate((str(number), state, text, _percent(value), run or "")):
            item = QTableWidgetItem(cell)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            if best:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            self.table.setItem(row, column, item)

    def _choose_storage(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Share the study through a journal file", self.storage.text(), "Journal (*)"
        )
        if path:
            self.storage.setText(path)


def _percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, float) and not math.isnan(value) else "–"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def add_sweep_button(panel: Any) -> QPushButton:
    """*Sweep…* beside the Train tab's *Start training*: a sweep of the tab's data folder and
    options, saving the best model where the tab would save its run."""

    def open_dialog() -> None:
        if panel.report is None or panel.handle is not None:
            panel.run_view.set_status("Choose a data folder first (and wait for training to end).")
            return
        data = str(panel.report.root)
        out = panel.output.path_for_run(data)
        if out is None:
            return
        uri = panel.settings.tracking_uri or None
        dialog = SweepDialog(panel.runner, data, out, panel.config(), panel, uri)
        dialog.use_model.connect(panel.use_model)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        panel.sweep_dialog = dialog
        dialog.show()

    button = QPushButton("Sweep…", panel, clicked=open_dialog)
    button.setToolTip("Try several options (Optuna) and keep the best model")
    panel.run_view.buttons.addWidget(button)
    return button
