"""Recorded runs side by side: validation accuracy and loss per epoch, one colour per run, with
a legend, drawn with pyqtgraph (imported when the plots are first shown, as the Train tab's
curves are)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from PySide6.QtGui import QPalette, QShowEvent
from PySide6.QtWidgets import QHBoxLayout, QWidget

from cnn_desktop.gui.widgets.training_curves import epoch_plot

RUN_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def run_colour(position: int) -> str:
    """The colour of the ``position``-th run shown (the palette repeats after ten)."""
    return RUN_COLOURS[position % len(RUN_COLOURS)]


def epoch_series(record: dict[str, Any], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of ``key`` in a record's history; missing or NaN values left out
    (``*accuracy`` in %)."""
    scale = 100.0 if key.endswith("accuracy") else 1.0
    xs, ys = [], []
    for row in record.get("history") or []:
        value, epoch = row.get(key), row.get("epoch")
        if isinstance(value, (int, float)) and math.isfinite(value) and epoch is not None:
            xs.append(float(epoch))
            ys.append(float(value) * scale)
    return xs, ys


class RunCurves(QWidget):
    """Two plots side by side: validation accuracy, and loss (validation solid, training
    dotted), per epoch of each run shown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(200)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.records: list[dict[str, Any]] = []
        self.labels: list[str] = []
        self.accuracy_plot: Any = None
        self.loss_plot: Any = None
        self.drawn: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
        """Run id → series name (``val_accuracy``, ``val_loss``, ``loss``) → the points drawn."""

    def show_runs(
        self, records: Sequence[dict[str, Any]], labels: Sequence[str] | None = None
    ) -> None:
        """Draw the curves of ``records`` (in this order: the n-th gets the n-th colour), named
        ``labels`` in the legend (default: the run ids)."""
        self.records = list(records)
        self.labels = list(labels) if labels is not None else [str(r.get("id")) for r in records]
        self._redraw()

    def legend_labels(self) -> list[str]:
        """The names in the accuracy plot's legend, in order."""
        if self.accuracy_plot is None or self.accuracy_plot.legend is None:
            return []
        return [label.text for _sample, label in self.accuracy_plot.legend.items]

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._redraw()

    def _ensure_plots(self) -> bool:
        if self.accuracy_plot is not None:
            return True
        if not self.isVisible():
            return False
        titles = (("Validation accuracy", "%"), ("Loss (validation ——, training ···)", ""))
        plots = []
        for title, unit in titles:
            plot, item = epoch_plot(self, title, unit)
            self._layout.addWidget(plot)
            plots.append(item)
        self.accuracy_plot, self.loss_plot = plots
        # One legend names the runs for both plots; it sits low, where accuracy curves end.
        foreground = self.palette().color(QPalette.ColorRole.Text).name()
        self.accuracy_plot.addLegend(offset=(-10, -10), labelTextColor=foreground)
        return True

    def _redraw(self) -> None:
        if not self._ensure_plots():
            return
        import pyqtgraph as pg

        for plot in (self.accuracy_plot, self.loss_plot):
            plot.clear()  # also empties the legend
        self.drawn = {}
        for position, (record, label) in enumerate(zip(self.records, self.labels, strict=True)):
            colour = run_colour(position)
            name = str(record.get("id"))
            series = {
                key: epoch_series(record, key) for key in ("val_accuracy", "val_loss", "loss")
            }
            self.drawn[name] = series
            solid = pg.mkPen(colour, width=2)
            self.accuracy_plot.plot(*series["val_accuracy"], name=label, pen=solid, symbol="o",
                                    symbolSize=5, symbolBrush=colour, symbolPen=colour)  # fmt: skip
            self.loss_plot.plot(*series["val_loss"], pen=solid)
            dotted = pg.mkPen(colour, width=1, style=pg.QtCore.Qt.PenStyle.DotLine)
            self.loss_plot.plot(*series["loss"], pen=dotted)
        self.accuracy_plot.setYRange(0, 100, padding=0.02)
