"""Every layer of the model (name, type, output shape, parameters) and first-layer kernels."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_desktop.gui.widgets.image_preview import ImagePreview

COLUMNS = ("Layer", "Type", "Output shape", "Parameters")


class ModelView(QWidget):
    """Model summary table plus the first convolution's kernels as RGB tiles."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("No model", self)
        self.title.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.kernels_label = QLabel(
            "First-layer kernels: what the first convolution looks for", self
        )
        self.kernels = ImagePreview("", self)
        self.kernels.setMinimumHeight(150)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 3)
        layout.addWidget(self.kernels_label)
        layout.addWidget(self.kernels, 1)

    def show_summary(self, title: str, layers: list, kernels: QImage | None) -> None:
        """Fill the table from ``LayerInfo`` rows and show the kernel tiles."""
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(layers))
        total = 0
        for row, layer in enumerate(layers):
            shape = "×".join("N" if d is None else str(d) for d in layer.output_shape)
            values = (layer.name, layer.kind, shape, f"{layer.parameters:,}")
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                if column == 3:
                    item.setData(Qt.ItemDataRole.UserRole, layer.parameters)
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(row, column, item)
            total += layer.parameters
        convs = sum(1 for layer in layers if layer.is_conv)
        self.title.setText(
            f"<b>{title}</b> — {len(layers)} layers, {convs} convolutions, {total:,} parameters"
        )
        self.kernels.set_image(kernels)
        self.kernels_label.setVisible(kernels is not None)
        self.kernels.setVisible(kernels is not None)
