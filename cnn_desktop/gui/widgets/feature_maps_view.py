"""Feature maps of one layer: a grid of channels, statistics, one channel enlarged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from PySide6.QtCore import Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnn_desktop.core.explain import colorize, overlay
from cnn_desktop.gui.qt_images import pil_to_qimage
from cnn_desktop.gui.widgets.clickable_image import ClickableImage
from cnn_desktop.gui.widgets.histogram import Histogram
from cnn_desktop.gui.widgets.image_preview import ImagePreview

SORT_CHOICES = {"Channel order": "index", "Mean activation (high → low)": "mean"}
COLORMAPS = ("inferno", "viridis", "jet")


@dataclass(frozen=True)
class FeatureMapsResult:
    """One layer's activations for one image, ready to show (built off the UI thread)."""

    layer: str
    maps: np.ndarray  # [channels, h, w]
    order: np.ndarray  # channel shown in each grid cell
    columns: int
    pad: int
    grid: QImage
    statistics: object  # core.explain.LayerStatistics
    crop: Image.Image  # what the network saw


class FeatureMapsView(QWidget):
    """Layer picker, channel grid, statistics and histogram, and the clicked channel."""

    layer_chosen = Signal(str)
    options_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer_box = QComboBox(self)
        self.layer_box.setToolTip("Convolutional layer to look inside")
        self.layer_box.setMinimumContentsLength(22)
        self.layer_box.currentTextChanged.connect(self._layer_changed)
        self.sort_box = QComboBox(self)
        self.sort_box.addItems(list(SORT_CHOICES))
        self.sort_box.currentIndexChanged.connect(lambda _i: self.options_changed.emit())
        self.colormap_box = QComboBox(self)
        self.colormap_box.addItems(list(COLORMAPS))
        self.colormap_box.currentIndexChanged.connect(lambda _i: self.options_changed.emit())
        pickers = QHBoxLayout()
        pickers.addWidget(QLabel("Layer", self))
        pickers.addWidget(self.layer_box, 1)
        pickers.addWidget(QLabel("Sort", self))
        pickers.addWidget(self.sort_box)
        pickers.addWidget(self.colormap_box)

        self.grid = ClickableImage("Select an image and a layer", self)
        self.grid.setToolTip("Click a channel to enlarge it and see it over the image")
        self.grid.clicked.connect(self._grid_clicked)
        self.stats_label = QLabel(self)
        self.stats_label.setWordWrap(True)
        self.histogram = Histogram(self)
        self.channel_label = QLabel("Click a channel in the grid", self)
        self.channel_view = ImagePreview("", self)
        self.channel_overlay = ImagePreview("", self)
        detail = QWidget(self)
        detail_layout = QGridLayout(detail)
        detail_layout.addWidget(self.stats_label, 0, 0, 1, 2)
        detail_layout.addWidget(self.histogram, 1, 0, 1, 2)
        detail_layout.addWidget(self.channel_label, 2, 0, 1, 2)
        detail_layout.addWidget(self.channel_view, 3, 0)
        detail_layout.addWidget(self.channel_overlay, 3, 1)
        splitter = QSplitter(self)
        splitter.setOrientation(splitter.orientation().Vertical)
        splitter.addWidget(self.grid)
        splitter.addWidget(detail)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(pickers)
        layout.addWidget(splitter, 1)
        self.result: FeatureMapsResult | None = None
        self.selected_channel: int | None = None

    @property
    def layer(self) -> str:
        """The chosen layer."""
        return self.layer_box.currentText()

    @property
    def sort_by(self) -> str:
        """``index`` or ``mean``."""
        return SORT_CHOICES[self.sort_box.currentText()]

    @property
    def colormap(self) -> str:
        """The chosen colour map."""
        return self.colormap_box.currentText()

    def set_layers(self, layers: list[str], preferred: str | None = None) -> None:
        """Offer these layers; keep the current one if it still exists."""
        current = self.layer or preferred
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(layers)
        if current in layers:
            self.layer_box.setCurrentText(current)
        elif layers:
            self.layer_box.setCurrentIndex(min(len(layers) - 1, len(layers) // 3))
        self.layer_box.blockSignals(False)

    def show_result(self, result: FeatureMapsResult) -> None:
        """Show a layer's activations."""
        self.result = result
        self.grid.set_image(result.grid)
        s = result.statistics
        channels, height, width = result.maps.shape
        self.stats_label.setText(
            f"<b>{result.layer}</b>: {channels} channels of {height}×{width} · "
            f"mean {s.mean:.3g} · std {s.std:.3g} · zeros {s.zero_fraction:.1%} · "
            f"range {s.min:.3g} … {s.max:.3g}"
        )
        self.histogram.set_data(s.histogram_counts, s.histogram_edges)
        channel = self.selected_channel
        self.show_channel(
            channel if channel is not None and channel < channels else int(result.order[0])
        )

    def show_channel(self, channel: int) -> None:
        """Enlarge one channel and lay it over the image the network saw."""
        if self.result is None:
            return
        self.selected_channel = channel
        values = self.result.maps[channel]
        mean = float(values.mean())
        self.channel_label.setText(
            f"Channel {channel} · mean {mean:.3g} · max {float(values.max()):.3g}"
        )
        rgb = colorize(values, self.colormap)
        self.channel_view.set_image(
            pil_to_qimage(
                Image.fromarray(rgb).resize(self.result.crop.size, Image.Resampling.NEAREST)
            )
        )
        span = float(values.max() - values.min())
        normalised = (values - values.min()) / span if span > 0 else np.zeros_like(values)
        self.channel_overlay.set_image(
            pil_to_qimage(overlay(self.result.crop, normalised, 0.6, self.colormap))
        )

    def clear(self, message: str = "") -> None:
        """Nothing to show."""
        self.result = None
        self.grid.set_image(None)
        self.grid.setText(message or "Select an image and a layer")
        self.stats_label.clear()
        self.histogram.set_data(np.zeros(0), np.zeros(0))
        self.channel_view.set_image(None)
        self.channel_overlay.set_image(None)

    def _grid_clicked(self, x: int, y: int) -> None:
        result = self.result
        if result is None:
            return
        _, height, width = result.maps.shape
        column, row = x // (width + result.pad), y // (height + result.pad)
        cell = row * result.columns + column
        if column < result.columns and cell < len(result.order):
            self.show_channel(int(result.order[cell]))

    def _layer_changed(self, layer: str) -> None:
        if layer:
            self.selected_channel = None
            self.layer_chosen.emit(layer)
