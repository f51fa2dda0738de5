"""A small histogram drawn with QPainter (activation distributions)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget


class Histogram(QWidget):
    """Bars for ``counts`` over ``edges``, with the range written underneath."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._counts = np.zeros(0)
        self._edges = np.zeros(0)
        self.setMinimumHeight(70)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(240, 80)

    def set_data(self, counts: np.ndarray, edges: np.ndarray) -> None:
        """Show a histogram (``len(edges) == len(counts) + 1``)."""
        self._counts = np.asarray(counts, dtype=np.float64)
        self._edges = np.asarray(edges, dtype=np.float64)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        palette = self.palette()
        text_height = self.fontMetrics().height()
        area = QRectF(self.rect()).adjusted(2, 2, -2, -text_height - 2)
        if len(self._counts) and self._counts.max() > 0:
            # Log scale: activation histograms are dominated by the zero bin after ReLU.
            heights = np.log1p(self._counts) / np.log1p(self._counts.max())
            width = area.width() / len(heights)
            colour = palette.color(QPalette.ColorRole.Highlight)
            for i, h in enumerate(heights):
                bar_h = h * area.height()
                painter.fillRect(
                    QRectF(
                        area.left() + i * width, area.bottom() - bar_h, max(width - 1, 1), bar_h
                    ),
                    colour,
                )
            painter.setPen(palette.color(QPalette.ColorRole.Text))
            painter.drawText(2, self.height() - 3, f"{self._edges[0]:.3g}")
            right = f"{self._edges[-1]:.3g}"
            painter.drawText(
                self.width() - self.fontMetrics().horizontalAdvance(right) - 2,
                self.height() - 3,
                right,
            )
        painter.end()
