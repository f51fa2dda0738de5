"""The selected image, its top-K classes, and a class-activation map over what the model saw."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from cnn_desktop.core.explain import overlay
from cnn_desktop.gui.qt_images import pil_to_qimage
from cnn_desktop.gui.widgets.image_preview import ImagePreview
from cnn_desktop.gui.widgets.prediction_bars import PredictionBars


class PredictionView(QWidget):
    """Image, bars and CAM controls. Clicking a class's name asks for its CAM."""

    cam_requested = Signal(int)  # class index
    cam_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preview = ImagePreview("Select an image in the gallery", self)
        self.name_label = QLabel(self)
        self.name_label.setWordWrap(True)
        self.name_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bars = PredictionBars(self)
        self.bars.class_clicked.connect(self._class_clicked)
        self.cam_toggle = QCheckBox("Show class-activation map (why?)", self)
        self.cam_toggle.setToolTip(
            "Highlights the regions that drove the chosen class. Click a class name to see its map."
        )
        self.cam_toggle.toggled.connect(self._toggled)
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(55)
        self.opacity.setToolTip("Opacity of the map")
        self.opacity.valueChanged.connect(lambda _v: self._render_cam())
        self.cam_label = QLabel(self)
        self.cam_label.setWordWrap(True)
        controls = QHBoxLayout()
        controls.addWidget(self.cam_toggle)
        controls.addWidget(QLabel("Opacity", self))
        controls.addWidget(self.opacity, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.name_label)
        layout.addWidget(self.bars)
        layout.addLayout(controls)
        layout.addWidget(self.cam_label)
        self._image: QImage | None = None
        self._crop: Image.Image | None = None
        self._heatmap: np.ndarray | None = None
        self.cam_class: int | None = None

    @property
    def cam_enabled(self) -> bool:
        """Whether the CAM overlay is switched on."""
        return self.cam_toggle.isChecked()

    def show_image(self, title: str, image: QImage | None, predictions: tuple) -> None:
        """Show a newly selected image (its CAM comes later via :meth:`show_cam`)."""
        self.name_label.setText(title)
        self.bars.set_predictions(predictions)
        self._image = image
        self._crop = self._heatmap = None
        self.cam_class = predictions[0].index if predictions else None
        self.cam_label.setText("Computing the class-activation map…" if self.cam_enabled else "")
        self.preview.set_image(image)

    def show_cam(self, crop: Image.Image, heatmap: np.ndarray, description: str) -> None:
        """Overlay a CAM on the crop the network saw."""
        self._crop, self._heatmap = crop, heatmap
        self.cam_label.setText(description)
        self._render_cam()

    def clear_cam(self, message: str = "") -> None:
        """Back to the plain image."""
        self._crop = self._heatmap = None
        self.cam_label.setText(message)
        self.preview.set_image(self._image)

    def _render_cam(self) -> None:
        if not self.cam_enabled or self._crop is None or self._heatmap is None:
            return
        blended = overlay(self._crop, self._heatmap, opacity=self.opacity.value() / 100)
        self.preview.set_image(pil_to_qimage(blended))

    def explain_class(self, index: int) -> None:
        """Switch the CAM on for class ``index``."""
        self._class_clicked(index)

    def _class_clicked(self, index: int) -> None:
        self.cam_class = index
        if not self.cam_enabled:
            self.cam_toggle.setChecked(True)  # emits cam_toggled → CAM for cam_class
        else:
            self.cam_requested.emit(index)

    def _toggled(self, on: bool) -> None:
        if not on:
            self.clear_cam()
        self.cam_toggled.emit(on)
