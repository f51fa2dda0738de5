"""A trained model's reliability diagram: per confidence bin, the share of right answers before
and after calibration (temperature scaling) as bars, against the diagonal a calibrated model
follows; drawn with pyqtgraph, imported when the diagram is first shown.

:class:`ResultsWithCalibration` is the Train tab's results view with the diagram beside the
confusion matrix.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette, QShowEvent
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from cnn_desktop.core.training import TrainResult
from cnn_desktop.gui.runner import TaskRunner
from cnn_desktop.gui.widgets.confusion_matrix import TrainResultsView

BEFORE_COLOUR = "#b0b0b0"
AFTER_COLOUR = "#1f77b4"
EXPLANATION = (
    "Each bar: of the images whose top confidence falls in that bin, the share the model got "
    "right. A model whose confidences can be trusted has bars on the diagonal. Grey: the "
    "trained model as it was; blue: after temperature scaling (what the saved model reports)."
)


def _heights(bins: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
    """``(bin centre, bin width, accuracy)`` of the bins that hold images."""
    return [
        ((b["lower"] + b["upper"]) / 2, b["upper"] - b["lower"], float(b["accuracy"]))
        for b in bins
        if b.get("count") and b.get("accuracy") is not None
    ]


class ReliabilityDiagram(QWidget):
    """Accuracy per confidence bin, before (grey) and after (blue) calibration, with the
    diagonal; a caption names the images, the temperature and the ECE before and after.
    Hidden until a result with a calibration block is shown."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(220, 180)
        self.setToolTip(EXPLANATION)
        self.caption = QLabel(self)
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.caption)
        self.plot: Any = None
        self._bars: dict[str, Any] = {}
        self.block: dict[str, Any] = {}
        self.evaluated_on = ""
        self.clear()

    def clear(self) -> None:
        """Show nothing (a new run starts)."""
        self.block, self.evaluated_on = {}, ""
        self.caption.clear()
        self._redraw()
        self.setVisible(False)

    def show_calibration(self, calibration: dict[str, Any] | None) -> None:
        """Show a ``metrics.json`` calibration block: its held-out ``test`` bins when there
        are any, else the validation bins the temperature was fitted on."""
        calibration = calibration or {}
        test = calibration.get("test") or {}
        self.block = test if test.get("images") else calibration
        if not self.block.get("images"):
            self.clear()
            return
        self.evaluated_on = "test" if self.block is test else "validation"
        fitted = " (where T was fitted)" if self.evaluated_on == "validation" else ""
        self.caption.setText(
            f"Reliability on {self.block['images']} {self.evaluated_on} images{fitted} · "
            f"temperature {calibration['temperature']:.2f} · calibration error (ECE) "
            f"{self.block['ece_before']:.3f} before → {self.block['ece_after']:.3f} after"
        )
        self.setVisible(True)
        self._redraw()

    def bar_heights(self, which: str) -> list[float]:
        """The accuracies drawn for ``"before"`` or ``"after"``, bins with images only."""
        return [height for _, _, height in _heights(self.block.get(f"bins_{which}") or [])]

    # ----- drawing ------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._redraw()

    def _ensure_plot(self) -> bool:
        if self.plot is not None:
            return True
        if not self.isVisible():
            return False
        import pyqtgraph as pg

        palette = self.palette()
        foreground = palette.color(QPalette.ColorRole.Text)
        widget = pg.PlotWidget(self, background=palette.color(QPalette.ColorRole.Base))
        plot = widget.getPlotItem()
        plot.setLabel("bottom", "confidence")
        plot.setLabel("left", "accuracy")
        for axis in ("left", "bottom"):
            plot.getAxis(axis).setTextPen(foreground)
            plot.getAxis(axis).setPen(foreground)
        plot.setXRange(0, 1, padding=0.02)
        plot.setYRange(0, 1, padding=0.02)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.addLegend(offset=(8, 8), labelTextColor=foreground.name())  # top left: few bars
        dashed = pg.mkPen(foreground, width=1, style=Qt.PenStyle.DashLine)
        diagonal = plot.plot([0, 1], [0, 1], pen=dashed)  # where a calibrated model's bars end
        diagonal.setZValue(10)  # drawn over the bars, so it stays visible where they pass it
        for name, colour, title in (
            ("before", BEFORE_COLOUR, "before"),
            ("after", AFTER_COLOUR, "after"),
        ):
            bars = pg.BarGraphItem(
                x=[], height=[], width=0.03, brush=colour, pen=colour, name=title
            )
            plot.addItem(bars)
            self._bars[name] = bars
        self._layout.addWidget(widget, 1)
        self.plot = plot
        return True

    def _redraw(self) -> None:
        if not self._ensure_plot():
            return
        for name, side in (("before", -1), ("after", 1)):
            bars = _heights(self.block.get(f"bins_{name}") or [])
            width = bars[0][1] / 2 if bars else 0.03
            self._bars[name].setOpts(
                x=[centre + side * width / 2 for centre, _, _ in bars],
                height=[height for _, _, height in bars],
                width=width,
            )

    def drawn_heights(self, which: str) -> list[float]:
        """The heights of the bars on the plot (empty before it is first shown)."""
        bars = self._bars.get(which)
        return [] if bars is None else [float(h) for h in bars.opts["height"]]


class ResultsWithCalibration(TrainResultsView):
    """The Train tab's results (accuracy, export check, per-class figures, confusion matrix)
    with the reliability diagram beside the confusion matrix."""

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None) -> None:
        self.reliability: ReliabilityDiagram | None = None  # clear() runs in the base __init__
        super().__init__(runner, parent)
        self.reliability = ReliabilityDiagram(self)
        splitter = self.matrix.parentWidget()
        assert isinstance(splitter, QSplitter)
        splitter.addWidget(self.reliability)
        splitter.setSizes([300, 240, 200, 300])

    def clear(self) -> None:
        """No result (a new run starts)."""
        super().clear()
        if self.reliability is not None:
            self.reliability.clear()

    def show_result(self, result: TrainResult, cancelled: bool = False) -> None:
        """Show a run's figures and, when it was calibrated, its reliability diagram."""
        super().show_result(result, cancelled)
        assert self.reliability is not None
        self.reliability.show_calibration(result.metrics.get("calibration"))
