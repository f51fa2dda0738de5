"""The right-hand panel: prediction with class-activation map, feature maps, model layers.

Every computation runs on the task runner; a newer request of the same kind replaces an
older one (keys), so clicking through a gallery never queues stale work. A result is shown
only if the model (explainer) and image it was computed for are still the current ones.
Failures are left to the runner, which reports them by title in the window's notification
area.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtWidgets import QTabWidget, QWidget

from cnn_desktop.core.explain import (
    METHOD_TITLES,
    Explainer,
    channel_order,
    feature_grid,
    layer_statistics,
)
from cnn_desktop.core.imaging import load_image
from cnn_desktop.gui.qt_images import pil_to_qimage
from cnn_desktop.gui.results_model import ImageEntry
from cnn_desktop.gui.runner import TaskContext, TaskRunner
from cnn_desktop.gui.state import ActiveModel, Settings
from cnn_desktop.gui.widgets.feature_maps_view import FeatureMapsResult, FeatureMapsView
from cnn_desktop.gui.widgets.model_view import ModelView
from cnn_desktop.gui.widgets.prediction_view import PredictionView

PREVIEW_SIDE = 1400
TABS = {"prediction": 0, "features": 1, "model": 2}


class ExplainPanel(QTabWidget):
    """What the model thinks of the selected image, and why."""

    def __init__(
        self, runner: TaskRunner, settings: Settings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.settings = settings
        self.prediction = PredictionView(self)
        self.features = FeatureMapsView(self)
        self.model_view = ModelView(self)
        self.addTab(self.prediction, "Prediction")
        self.addTab(self.features, "Feature Maps")
        self.addTab(self.model_view, "Model")
        self.bars = self.prediction.bars
        self.explainer: Explainer | None = None
        self.model_serial: int | None = None  # the ActiveModel.serial the explainer is for
        self._layers_of: Explainer | None = None  # whose layers the layer list shows
        self.entry: ImageEntry | None = None
        self.prediction.cam_requested.connect(lambda _i: self._request_cam())
        self.prediction.cam_toggled.connect(lambda on: self._request_cam() if on else None)
        self.features.layer_chosen.connect(lambda _layer: self._request_features())
        self.features.options_changed.connect(self._request_features)
        self.currentChanged.connect(lambda _i: self._refresh_visible())

    def show_tab(self, name: str) -> None:
        """Bring a tab to the front."""
        self.setCurrentIndex(TABS[name])

    # ----- model --------------------------------------------------------------------------
    def set_model(self, model: ActiveModel) -> None:
        """Explain with this model from now on; what the previous one computed is dropped."""
        for key in ("cam", "features"):  # the previous model's: their results would be dropped
            self.runner.cancel_key(key)
        explainer = Explainer(model.bundle, model.classifier)
        self.explainer, self.model_serial, self._layers_of = explainer, model.serial, None
        self.prediction.clear_cam()
        self.features.clear("Reading the model's layers…")
        title = f"{model.bundle.spec.name} ({model.classifier.backend})"

        def job(_context: TaskContext) -> tuple:
            kernels = explainer.kernels()
            kernel_image = None
            if kernels is not None and len(kernels):
                columns = math.ceil(math.sqrt(len(kernels)))
                kernel_image = pil_to_qimage(_tile_kernels(kernels, columns))
            summary = explainer.summary(), explainer.conv_layers(), kernel_image
            explainer.warm_up()
            return summary

        def done(result: tuple) -> None:
            if self.explainer is not explainer:
                return
            layers, convs, kernels = result
            self.model_view.show_summary(title, layers, kernels)
            self.features.set_layers(convs)
            self._layers_of = explainer
            self._refresh_visible()

        self.runner.submit("Model summary", job, key="summary", interactive=True, on_result=done)

    def _is_current(self, explainer: Explainer, path: Path) -> bool:
        """Whether a result computed by ``explainer`` for ``path`` is still the one to show."""
        entry = self.entry
        return self.explainer is explainer and entry is not None and entry.path == path

    # ----- image --------------------------------------------------------------------------
    def set_image(self, entry: ImageEntry | None) -> None:
        """Show (and explain) the selected image."""
        same_image = entry is not None and self.entry is not None and entry.path == self.entry.path
        self.entry = entry
        if entry is None:
            self.prediction.show_image("", None, ())
            self.features.clear()
            return
        title = str(entry.path) + (f"\n⚠ {entry.error}" if entry.error else "")
        keep_image = self.prediction.preview.image() if same_image else entry.thumbnail
        self.prediction.show_image(title, keep_image, entry.predictions)
        if entry.error is not None:
            self.prediction.clear_cam("No class-activation map: the image could not be read.")
            self.features.clear("This image could not be read.")
            return
        if entry.pending:
            self.features.clear("Classifying…")
        if not same_image:
            self._request_preview(entry.path)
        self._refresh_visible()

    def _refresh_visible(self) -> None:
        if self.entry is None or self.entry.error is not None or self.entry.pending:
            return
        if self.currentIndex() == TABS["prediction"] and self.prediction.cam_enabled:
            self._request_cam()
        elif self.currentIndex() == TABS["features"]:
            self._request_features()

    def _request_preview(self, path: Path) -> None:
        def job(_context: TaskContext):
            image = load_image(path, min_side=PREVIEW_SIDE)
            image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BILINEAR)
            return pil_to_qimage(image)

        def done(image) -> None:
            if self.entry is not None and self.entry.path == path:
                self.prediction._image = image
                if not (self.prediction.cam_enabled and self.prediction._heatmap is not None):
                    self.prediction.preview.set_image(image)

        self.runner.submit(
            "Preview", job, key="preview", interactive=True, on_result=done, on_error=_ignore
        )

    def _request_cam(self) -> None:
        explainer, entry = self.explainer, self.entry
        class_index = self.prediction.cam_class
        if explainer is None or entry is None or entry.error or class_index is None:
            return
        if entry.model_serial != self.model_serial:
            return  # classified by another model: its class indices mean nothing to this one
        names = explainer.spec.class_names
        if not 0 <= class_index < len(names):
            self.prediction.clear_cam(f"This model has no class {class_index}.")
            return

        def job(_context: TaskContext) -> tuple:
            tensor, crop = explainer.network_input(entry.path)
            return crop, explainer.cam(tensor, class_index)

        def done(result: tuple) -> None:
            if not self._is_current(explainer, entry.path):
                return
            crop, cam = result
            method = METHOD_TITLES.get(cam.method, cam.method)
            self.prediction.show_cam(
                crop,
                cam.heatmap,
                f"{method} for “{names[class_index]}” ({cam.probability:.1%}) over the "
                f"{crop.width}×{crop.height} crop the model saw",
            )

        self.runner.submit("Class-activation map", job, key="cam", interactive=True, on_result=done)

    def _request_features(self) -> None:
        explainer, entry, layer = self.explainer, self.entry, self.features.layer
        if explainer is None or entry is None or entry.error or not layer:
            return
        if self._layers_of is not explainer:
            return  # the layer list is still the previous model's
        sort_by, colormap = self.features.sort_by, self.features.colormap

        def job(_context: TaskContext) -> FeatureMapsResult:
            tensor, crop = explainer.network_input(entry.path)
            maps = explainer.feature_maps(tensor, layer)
            order = np.arange(len(maps)) if sort_by == "index" else channel_order(maps, by=sort_by)
            columns = math.ceil(math.sqrt(len(maps)))
            pad = 1 if maps.shape[-1] < 32 else 2
            grid = feature_grid(maps, order=order, columns=columns, colormap=colormap, pad=pad)
            return FeatureMapsResult(
                layer=layer,
                maps=maps,
                order=order,
                columns=columns,
                pad=pad,
                grid=pil_to_qimage(Image.fromarray(grid)),
                statistics=layer_statistics(maps),
                crop=crop,
            )

        def done(result: FeatureMapsResult) -> None:
            if self._is_current(explainer, entry.path):
                self.features.show_result(result)

        self.runner.submit("Feature maps", job, key="features", interactive=True, on_result=done)


def _ignore(_message: str) -> None:
    """A preview that cannot be made leaves the thumbnail (the error shows in the gallery)."""


def _tile_kernels(kernels, columns: int) -> Image.Image:
    """Kernel tiles ``[N, kh, kw, 3]`` as one enlarged image."""
    count, height, width, _ = kernels.shape
    scale = max(1, 24 // max(height, width))
    rows = math.ceil(count / columns)
    sheet = Image.new("RGB", (columns * (width * scale + 2), rows * (height * scale + 2)), "white")
    for i, kernel in enumerate(kernels):
        tile = Image.fromarray(kernel).resize(
            (width * scale, height * scale), Image.Resampling.NEAREST
        )
        sheet.paste(
            tile, ((i % columns) * (width * scale + 2), (i // columns) * (height * scale + 2))
        )
    return sheet
