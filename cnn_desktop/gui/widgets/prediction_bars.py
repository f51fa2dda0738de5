"""Top-K classes as labelled confidence bars."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QPushButton, QWidget

from cnn_desktop.core.inference import Prediction

BAR_RESOLUTION = 1000


class PredictionBars(QWidget):
    """One row per class: name, bar, percentage. Clicking a class name selects it."""

    class_clicked = Signal(int)  # class index

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QGridLayout(self)
        self._layout.setColumnStretch(1, 1)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._rows: list[tuple[QPushButton, QProgressBar, QLabel]] = []
        self._predictions: tuple[Prediction, ...] = ()

    @property
    def predictions(self) -> tuple[Prediction, ...]:
        """What the bars show."""
        return self._predictions

    def bar_values(self) -> list[tuple[str, float]]:
        """(label, fraction) shown per row, for tests and accessibility."""
        return [
            (button.text(), bar.value() / BAR_RESOLUTION)
            for button, bar, _ in self._rows[: len(self._predictions)]
        ]

    def set_predictions(self, predictions: tuple[Prediction, ...]) -> None:
        """Show these classes, best first."""
        self._predictions = predictions
        while len(self._rows) < len(predictions):
            self._add_row()
        for row, (button, bar, percent) in enumerate(self._rows):
            visible = row < len(predictions)
            for widget in (button, bar, percent):
                widget.setVisible(visible)
            if visible:
                p = predictions[row]
                button.setText(p.label)
                button.setToolTip(f"class {p.index}: {p.label}")
                bar.setValue(round(p.confidence * BAR_RESOLUTION))
                percent.setText(f"{p.confidence:.1%}")

    def _add_row(self) -> None:
        row = len(self._rows)
        button = QPushButton(self)
        button.setFlat(True)
        button.setStyleSheet("text-align: left; padding: 2px 4px;")
        button.clicked.connect(lambda: self._clicked(row))
        bar = QProgressBar(self)
        bar.setRange(0, BAR_RESOLUTION)
        bar.setTextVisible(False)
        bar.setMaximumHeight(14)
        percent = QLabel(self)
        percent.setMinimumWidth(52)
        self._layout.addWidget(button, row, 0)
        self._layout.addWidget(bar, row, 1)
        self._layout.addWidget(percent, row, 2)
        self._rows.append((button, bar, percent))

    def _clicked(self, row: int) -> None:
        if row < len(self._predictions):
            self.class_clicked.emit(self._predictions[row].index)
