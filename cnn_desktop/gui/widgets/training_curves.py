"""Live training progress: the job streaming a run's events to the UI thread (step events
throttled), a progress bar with status, and curves of loss and accuracy per
epoch (training and validation) and of the loss of each reported step, drawn with pyqtgraph.

pyqtgraph is imported when the curves are first shown or fed (about half a second), not when
the window starts.
"""

from __future__ import annotations

import math
import time
from typing import Any

from PySide6.QtGui import QPalette, QShowEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from cnn_desktop.core.runs import recorded_train
from cnn_desktop.core.training import TrainConfig, TrainResult
from cnn_desktop.gui.runner import TaskContext

TRAIN_COLOUR = "#1f77b4"
VAL_COLOUR = "#ff7f0e"
STEP_COLOUR = "#9ecae9"
STEP_EMIT_INTERVAL_S = 0.05  # at most ~20 step events a second reach the UI thread


def run_training(
    context: TaskContext,
    data: str,
    out: str,
    config: TrainConfig,
    rerun_of: dict[str, Any] | None = None,
    tracking_uri: str | None = None,
) -> TrainResult | None:
    """The training job: stream every event to the UI thread, step events throttled (the
    latest one is kept and sent once 50 ms have passed, or before the next other event);
    ``rerun_of``: the run record this run repeats (refused when its data changed);
    ``tracking_uri``: the MLflow store it is also recorded in (None: MLFLOW_TRACKING_URI)."""
    last_emit, pending, result = 0.0, None, None
    # Recorded like a CLI run (the Runs view lists it; MLflow too when MLFLOW_TRACKING_URI
    # names a store).
    events = recorded_train(
        data, out, config, cancel=context.cancel, rerun_of=rerun_of, tracking_uri=tracking_uri
    )
    for event in events:
        if event.kind == "step":
            now = time.monotonic()
            if now - last_emit < STEP_EMIT_INTERVAL_S:
                pending = event
                continue
            last_emit, pending = now, None
        elif pending is not None:
            context.emit(pending)
            pending = None
        context.emit(event)
        result = event.result or result
    return result


class TrainingCurves(QWidget):
    """Two plots side by side: loss (with step loss) and accuracy, against epochs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(180)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.series: dict[str, tuple[list[float], list[float]]] = {
            name: ([], []) for name in ("step_loss", "loss", "val_loss", "accuracy", "val_accuracy")
        }
        self._curves: dict[str, Any] = {}
        self.loss_plot: Any = None
        self.accuracy_plot: Any = None

    # ----- data ---------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every point (a new run starts)."""
        for xs, ys in self.series.values():
            xs.clear()
            ys.clear()
        self._redraw()

    def add_step(self, position: float, loss: float) -> None:
        """One training step's loss; ``position`` is in epochs (2.5 = half-way through epoch 3)."""
        if math.isfinite(loss):
            self._append("step_loss", position, loss)
            self._redraw("step_loss")

    def add_epoch(
        self,
        epoch: int,
        loss: float,
        accuracy: float,
        val_loss: float = math.nan,
        val_accuracy: float = math.nan,
    ) -> None:
        """The figures at the end of an epoch (accuracies as fractions, shown in %)."""
        values = {
            "loss": loss,
            "val_loss": val_loss,
            "accuracy": accuracy * 100,
            "val_accuracy": val_accuracy * 100,
        }
        for name, value in values.items():
            if math.isfinite(value):
                self._append(name, float(epoch), value)
        self._redraw()

    def epoch_points(self) -> int:
        """How many epochs have been plotted."""
        return len(self.series["loss"][0])

    def _append(self, name: str, x: float, y: float) -> None:
        xs, ys = self.series[name]
        xs.append(x)
        ys.append(float(y))

    # ----- drawing ------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._ensure_plots()
        self._redraw()

    def _ensure_plots(self) -> bool:
        if self.loss_plot is not None:
            return True
        if not self.isVisible():
            return False
        import pyqtgraph as pg

        foreground = self.palette().color(QPalette.ColorRole.Text)
        plots = []
        # The legend sits where the curves are not: top right for loss, bottom right for accuracy.
        for title, unit, legend_y in (("Loss", "", 10), ("Accuracy", "%", -10)):
            plot, item = epoch_plot(self, title, unit)
            item.addLegend(offset=(-10, legend_y), labelTextColor=foreground.name())
            self._layout.addWidget(plot)
            plots.append(item)
        self.loss_plot, self.accuracy_plot = plots
        self.accuracy_plot.setYRange(0, 100, padding=0.02)
        self._curves = {
            "step_loss": self.loss_plot.plot(name="step", pen=pg.mkPen(STEP_COLOUR, width=1)),
            "loss": self._epoch_curve(pg, self.loss_plot, "train", TRAIN_COLOUR),
            "val_loss": self._epoch_curve(pg, self.loss_plot, "validation", VAL_COLOUR),
            "accuracy": self._epoch_curve(pg, self.accuracy_plot, "train", TRAIN_COLOUR),
            "val_accuracy": self._epoch_curve(pg, self.accuracy_plot, "validation", VAL_COLOUR),
        }
        return True

    @staticmethod
    def _epoch_curve(pg: Any, plot: Any, name: str, colour: str) -> Any:
        return plot.plot(
            name=name,
            pen=pg.mkPen(colour, width=2),
            symbol="o",
            symbolSize=6,
            symbolBrush=colour,
            symbolPen=colour,
        )

    def _redraw(self, only: str | None = None) -> None:
        if not self._ensure_plots():
            return
        for name in [only] if only else self.series:
            xs, ys = self.series[name]
            self._curves[name].setData(xs, ys)


def epoch_plot(parent: QWidget, title: str, unit: str = "") -> tuple[Any, Any]:
    """A pyqtgraph plot against epochs in ``parent``'s palette, without mouse zoom: the
    widget (for a layout) and its plot item (to draw on)."""
    import pyqtgraph as pg

    palette = parent.palette()
    foreground = palette.color(QPalette.ColorRole.Text)
    plot = pg.PlotWidget(parent, background=palette.color(QPalette.ColorRole.Base))
    item = plot.getPlotItem()
    item.setTitle(title, color=foreground.name())
    item.showGrid(x=True, y=True, alpha=0.25)
    item.setLabel("bottom", "epoch")
    if unit:
        item.setLabel("left", unit)
    for axis in ("left", "bottom"):
        item.getAxis(axis).setTextPen(foreground)
        item.getAxis(axis).setPen(foreground)
    item.setMouseEnabled(x=False, y=False)
    item.hideButtons()
    return plot, item


def format_eta(seconds: float) -> str:
    """``1 min 05 s left`` (empty when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s left" if minutes else f"{secs} s left"


class TrainingProgress(QWidget):
    """A run as it happens: a progress bar, a status line (step, images/s, ETA), the last
    epoch's figures and the curves. Feed it the run's events with :meth:`show_event`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.status_label = QLabel(self)
        self.epoch_label = QLabel(self)
        for label in (self.status_label, self.epoch_label):
            label.setWordWrap(True)
        self.curves = TrainingCurves(self)
        self.buttons = QHBoxLayout()  # the panel puts Start and Cancel here
        row = QHBoxLayout()
        row.addLayout(self.buttons)
        row.addWidget(self.progress, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status_label)
        layout.addWidget(self.epoch_label)
        layout.addWidget(self.curves, 1)

    def reset(self, status: str) -> None:
        """A new run: no points, no progress."""
        self.curves.clear()
        self.progress.setValue(0)
        self.epoch_label.clear()
        self.set_status(status)

    def set_status(self, text: str, failed: bool = False) -> None:
        """The status line (red when ``failed``)."""
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #c62828;" if failed else "")

    def status(self) -> str:
        """The status line shown."""
        return self.status_label.text()

    def show_event(self, event: Any) -> None:
        """Show one ``TrainEvent`` (step, epoch, embed, checkpoint, export, done...)."""
        if event.kind in ("step", "epoch", "embed") and event.fraction:
            self.progress.setValue(round(event.fraction * 1000))
        if event.kind == "step":
            rate = f" · {event.images_per_s:.0f} images/s" if event.images_per_s > 0 else ""
            eta = format_eta(event.eta_s)
            self.set_status(
                f"Epoch {event.epoch}/{event.epochs} · step {event.step}/{event.steps} · "
                f"loss {event.loss:.3f}{rate}" + (f" · {eta}" if eta else "")
            )
            self.curves.add_step(event.epoch - 1 + event.step / max(1, event.steps), event.loss)
        elif event.kind == "epoch":
            self.curves.add_epoch(
                event.epoch, event.loss, event.accuracy, event.val_loss, event.val_accuracy
            )
            val = (
                f" · validation loss {event.val_loss:.3f}, accuracy {event.val_accuracy:.1%}"
                if math.isfinite(event.val_accuracy)
                else ""
            )
            best = f" ({event.message})" if event.message else ""
            self.epoch_label.setText(
                f"Epoch {event.epoch}/{event.epochs}: loss {event.loss:.3f}, "
                f"accuracy {event.accuracy:.1%}{val}{best}"
            )
            if math.isfinite(event.eta_s):
                self.set_status(f"Epoch {event.epoch}/{event.epochs} · {format_eta(event.eta_s)}")
        elif event.message:
            self.set_status(event.message.splitlines()[0])
