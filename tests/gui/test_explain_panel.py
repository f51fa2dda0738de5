"""The right-hand panel as a user drives it: feature maps of a chosen layer, the
class-activation map over a photo, the model's layers, on both backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage, QPalette
from PySide6.QtWidgets import QPushButton

from cnn_desktop.gui.main_window import MainWindow
from cnn_desktop.gui.widgets.feature_maps_view import FeatureMapsResult, FeatureMapsView
from cnn_desktop.gui.widgets.prediction_view import PredictionView
from tests.gui.conftest import (
    CATS,
    LOAD_TIMEOUT_MS,
    drop,
    entry_named,
    errors,
    first_result_arrived,
    select_path,
    wait_all_classified,
)
from tests.gui.waiting import settle

WAIT_MS = 30_000
STEM = "conv_stem (Conv)"  # the first convolution: 32 channels of 112×112 on a 224×224 input
BY_MEAN = "Mean activation (high → low)"
DEEP = "blocks.3.1.conv_pwl (Conv)"  # 80 channels of 14×14, many modules into the network


@pytest.fixture
def chelsea_window(qtbot, window: MainWindow, photos) -> MainWindow:
    """The window with the cat photo classified and selected."""
    drop(window, [photos["chelsea"]])
    wait_all_classified(qtbot, window, 1)
    entry = window.selected_entry()
    assert entry is not None and entry.path == photos["chelsea"]
    assert entry.top1.label in CATS
    return window


def pixels(image: QImage) -> np.ndarray:
    """An image's pixels as ``[h, w, 3]`` uint8."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    raw = np.frombuffer(rgb.constBits(), np.uint8, count=rgb.sizeInBytes())
    rows = raw.reshape(rgb.height(), rgb.bytesPerLine())[:, : rgb.width() * 3]
    return rows.reshape(rgb.height(), rgb.width(), 3).copy()


def highlight_pixels(widget) -> int:
    """How many pixels of ``widget`` are painted in the highlight colour (histogram bars)."""
    colour = widget.palette().color(QPalette.ColorRole.Highlight)
    shown = pixels(widget.grab().toImage())
    return int(np.all(shown == (colour.red(), colour.green(), colour.blue()), axis=-1).sum())


def wait_features(qtbot, view: FeatureMapsView, layer: str, after=None) -> FeatureMapsResult:
    """Wait for a feature-map result of ``layer`` newer than ``after``."""

    def arrived() -> bool:
        result = view.result
        return result is not None and result is not after and result.layer == layer

    qtbot.waitUntil(arrived, timeout=WAIT_MS)
    assert view.result is not None
    return view.result


def wait_cam(qtbot, prediction: PredictionView, method: str, label: str) -> str:
    """Wait until the CAM label says ``method`` for class ``label``; return the label."""
    wanted = f"{method} for “{label}”"
    qtbot.waitUntil(lambda: prediction.cam_label.text().startswith(wanted), timeout=WAIT_MS)
    return prediction.cam_label.text()


def click_image_pixel(qtbot, view, x: float, y: float) -> None:
    """A real mouse click on the widget position showing image pixel (x, y)."""
    image = view.image()
    scale = min(view.width() / image.width(), view.height() / image.height())
    left = (view.width() - image.width() * scale) / 2
    top = (view.height() - image.height() * scale) / 2
    qtbot.mouseClick(
        view, Qt.MouseButton.LeftButton, pos=QPoint(round(left + x * scale), round(top + y * scale))
    )


def cell_centre(result: FeatureMapsResult, cell: int) -> tuple[float, float]:
    """Image coordinates of the middle of grid cell ``cell``."""
    _, height, width = result.maps.shape
    row, column = divmod(cell, result.columns)
    return column * (width + result.pad) + width / 2, row * (height + result.pad) + height / 2


def class_button(window: MainWindow, row: int) -> QPushButton:
    """The clickable class name of row ``row`` of the prediction bars."""
    item = window.bars.layout().itemAtPosition(row, 0)
    assert item is not None
    button = item.widget()
    assert isinstance(button, QPushButton) and button.isVisible()
    return button


def test_feature_maps_of_a_chosen_layer(qtbot, chelsea_window: MainWindow):
    window = chelsea_window
    view = window.explain.features
    window.show_detail("features")
    layers = [view.layer_box.itemText(i) for i in range(view.layer_box.count())]
    assert len(layers) == 49 and layers[0] == STEM

    view.layer_box.setCurrentText(STEM)
    result = wait_features(qtbot, view, STEM)

    assert result.maps.shape == (32, 112, 112)
    assert list(result.order) == list(range(32)), "channel order until asked otherwise"
    grid = view.grid.image()
    assert grid is not None and not grid.isNull()
    assert grid.width() == result.columns * 112 + (result.columns - 1) * result.pad
    assert grid.height() == 6 * 112 + 5 * result.pad  # 32 channels in 6 rows of 6
    assert view.grid.pixmap() is not None and not view.grid.pixmap().isNull()
    assert f"{STEM}</b>: 32 channels of 112×112" in view.stats_label.text()
    assert highlight_pixels(view.histogram) > 50, "the histogram draws no bars"
    assert view.selected_channel == 0
    assert view.channel_label.text().startswith("Channel 0 ·")
    first_channel = pixels(view.channel_view.image())

    x, y = cell_centre(result, 1)
    click_image_pixel(qtbot, view.grid, x, y)
    assert view.selected_channel == int(result.order[1]) == 1
    assert view.channel_label.text().startswith("Channel 1 ·")
    assert not np.array_equal(pixels(view.channel_view.image()), first_channel)
    overlay = view.channel_overlay.image()
    assert overlay is not None and (overlay.width(), overlay.height()) == result.crop.size

    view.sort_box.setCurrentText(BY_MEAN)
    by_mean = wait_features(qtbot, view, STEM, after=result)

    means = by_mean.maps.reshape(32, -1).mean(axis=1)
    assert sorted(by_mean.order) == list(range(32))
    assert np.all(np.diff(means[by_mean.order]) <= 0), "strongest channel first"
    assert list(by_mean.order) != list(range(32))
    assert not np.array_equal(pixels(view.grid.image()), pixels(grid)), "the grid was redrawn"
    x, y = cell_centre(by_mean, 1)
    click_image_pixel(qtbot, view.grid, x, y)
    assert view.selected_channel == int(by_mean.order[1])
    assert view.channel_label.text().startswith(f"Channel {by_mean.order[1]} ·")
    assert not errors(window)


def test_class_activation_map_over_the_photo(qtbot, chelsea_window: MainWindow):
    window = chelsea_window
    prediction = window.explain.prediction
    window.show_detail("prediction")
    top = window.selected_entry().predictions
    qtbot.waitUntil(lambda: prediction.preview.image().width() == 451, timeout=WAIT_MS)

    qtbot.mouseClick(prediction.cam_toggle, Qt.MouseButton.LeftButton)
    assert prediction.cam_enabled
    label = wait_cam(qtbot, prediction, "CAM", top[0].label)
    assert "224×224 crop" in label
    assert prediction.cam_class == top[0].index

    crop = np.asarray(window.explain.explainer.network_input(window.selected_entry().path)[1])
    prediction.opacity.setValue(0)
    plain = pixels(prediction.preview.image())
    assert np.array_equal(plain, crop), "no map at opacity 0: the crop the model saw"
    prediction.opacity.setValue(60)
    blended = pixels(prediction.preview.image())
    prediction.opacity.setValue(100)
    heat = pixels(prediction.preview.image())
    assert plain.shape == blended.shape == heat.shape == (224, 224, 3)
    assert np.abs(blended.astype(int) - plain).mean() > 10
    assert np.abs(heat.astype(int) - blended).mean() > 5
    prediction.opacity.setValue(60)

    qtbot.mouseClick(class_button(window, 1), Qt.MouseButton.LeftButton)
    assert prediction.cam_class == top[1].index
    second = wait_cam(qtbot, prediction, "CAM", top[1].label)
    assert top[0].label not in second
    assert not np.array_equal(pixels(prediction.preview.image()), blended), "a different map"

    qtbot.mouseClick(prediction.cam_toggle, Qt.MouseButton.LeftButton)
    assert not prediction.cam_enabled
    assert prediction.cam_label.text() == ""
    assert prediction.preview.image().width() == 451, "back to the whole photo"
    assert not errors(window)


def switch_backend(qtbot, window: MainWindow, backend: str) -> None:
    """Choose a backend and wait until it runs and every image is classified again."""
    window.set_backend(backend)
    qtbot.waitUntil(
        lambda: window.active_model.classifier.backend == backend, timeout=LOAD_TIMEOUT_MS
    )
    wait_all_classified(qtbot, window, len(window.results.entries()))


def test_torch_backend_explains_with_grad_cam(qtbot, chelsea_window: MainWindow):
    window = chelsea_window
    prediction, features = window.explain.prediction, window.explain.features
    window.show_detail("features")
    features.layer_box.setCurrentText(STEM)
    onnx_maps = wait_features(qtbot, features, STEM)
    window.show_detail("model")  # nothing is explained while the backend changes

    switch_backend(qtbot, window, "torch")
    assert "torch on cpu" in window.model_label.text()
    assert window.actions_.backend["torch"].isChecked()
    assert window.settings.backend == "torch"
    top1 = window.selected_entry().top1.label
    assert top1 in CATS
    qtbot.waitUntil(lambda: "(torch)" in window.explain.model_view.title.text(), timeout=WAIT_MS)

    window.show_detail("prediction")
    prediction.cam_toggle.setChecked(True)
    label = wait_cam(qtbot, prediction, "Grad-CAM", top1)
    assert "224×224 crop" in label
    assert pixels(prediction.preview.image()).shape == (224, 224, 3)

    window.show_detail("features")
    torch_maps = wait_features(qtbot, features, STEM, after=onnx_maps)
    assert torch_maps.maps.shape == onnx_maps.maps.shape == (32, 112, 112)
    span = float(onnx_maps.maps.max() - onnx_maps.maps.min())
    assert np.abs(torch_maps.maps - onnx_maps.maps).max() < 1e-3 * span, "same layer, same maps"
    assert not view_is_empty(features)

    window.show_detail("prediction")
    switch_backend(qtbot, window, "onnx")
    assert "CPUExecutionProvider" in window.model_label.text()
    assert window.actions_.backend["onnx"].isChecked()
    wait_cam(qtbot, prediction, "CAM", window.selected_entry().top1.label)
    assert not errors(window)


def view_is_empty(view: FeatureMapsView) -> bool:
    image = view.grid.image()
    return image is None or image.isNull() or not view.stats_label.text()


def test_model_tab_lists_layers_and_first_kernels(qtbot, window: MainWindow):
    view = window.explain.model_view
    window.show_detail("model")
    assert window.explain.currentWidget() is view and view.isVisible()
    qtbot.waitUntil(lambda: view.table.rowCount() > 40, timeout=WAIT_MS)

    title = view.title.text()
    assert "EfficientNet-Lite0" in title and "(onnx)" in title
    assert "49 convolutions" in title
    rows = range(view.table.rowCount())
    cells = [tuple(view.table.item(r, c).text() for c in range(4)) for r in rows]
    assert (STEM, "Conv", "N×32×112×112", "896") in cells
    assert cells[-1][1] == "Softmax" and cells[-1][2] == "N×1000"
    assert sum(kind == "Conv" for _, kind, _, _ in cells) == 49
    parameters = sum(int(view.table.item(r, 3).text().replace(",", "")) for r in rows)
    assert 4_500_000 < parameters < 4_800_000  # EfficientNet-Lite0: 4.65 M weights
    assert f"{parameters:,} parameters" in title
    kernels = view.kernels.image()
    assert view.kernels.isVisible() and kernels is not None and not kernels.isNull()
    assert view.kernels.pixmap() is not None and not view.kernels.pixmap().isNull()
    assert pixels(kernels).std() > 10, "kernel tiles, not a blank sheet"


def test_a_bad_file_selected_with_the_maps_on_causes_no_error_storm(
    qtbot, window: MainWindow, photos, tmp_path: Path
):
    notes = tmp_path / "notes.png"
    notes.write_text("not an image", encoding="utf-8")
    drop(window, [photos["chelsea"], notes])
    wait_all_classified(qtbot, window, 2)
    prediction, features = window.explain.prediction, window.explain.features
    prediction.cam_toggle.setChecked(True)
    wait_cam(qtbot, prediction, "CAM", window.selected_entry().top1.label)
    window.show_detail("features")
    wait_features(qtbot, features, features.layer)
    window.show_detail("prediction")
    shown = len(window.notifications.messages)
    assert errors(window) == [f"notes.png: {entry_named(window, 'notes.png').error}"]

    for _ in range(3):  # back and forth between the photo and the broken file, both tabs
        for path in (notes, photos["chelsea"]):
            select_path(window, path)
            for tab in ("features", "prediction"):
                window.show_detail(tab)
                settle(qtbot, window, WAIT_MS)  # each request answered: none hides an error
    select_path(window, notes)
    settle(qtbot, window, WAIT_MS)

    assert len(window.notifications.messages) == shown, window.notifications.messages[shown:]
    assert "⚠ not an image file" in prediction.name_label.text()
    assert window.bars.bar_values() == []


def select_bad_file_after_explaining_the_photo(qtbot, window: MainWindow, photos, tmp_path):
    """Explain the cat photo on both tabs (CAM on), then select a file that is no image."""
    notes = tmp_path / "notes.png"
    notes.write_text("not an image", encoding="utf-8")
    drop(window, [photos["chelsea"], notes])
    wait_all_classified(qtbot, window, 2)
    window.show_detail("features")
    wait_features(qtbot, window.explain.features, window.explain.features.layer)
    window.show_detail("prediction")
    window.explain.prediction.cam_toggle.setChecked(True)
    wait_cam(qtbot, window.explain.prediction, "CAM", window.selected_entry().top1.label)
    select_path(window, notes)
    settle(qtbot, window, WAIT_MS)


def test_a_bad_file_selected_shows_no_stale_explanation(
    qtbot, window: MainWindow, photos, tmp_path
):
    select_bad_file_after_explaining_the_photo(qtbot, window, photos, tmp_path)
    prediction, features = window.explain.prediction, window.explain.features
    assert prediction.cam_enabled
    assert "Computing" not in prediction.cam_label.text(), "no map is coming for this file"
    assert prediction.preview.image() is None, "not the cat's map"

    window.show_detail("features")
    settle(qtbot, window, WAIT_MS)
    assert features.result is None and view_is_empty(features), features.stats_label.text()
    assert not errors(window)[1:], "only the file's own error"


def test_torch_explanations_stay_right_while_a_batch_classifies(
    qtbot, chelsea_window: MainWindow, big_batch
):
    # Explanations on PyTorch must not hook into (or be hooked by) the forward passes of a
    # classification running at the same time on another thread.
    window = chelsea_window
    features, prediction = window.explain.features, window.explain.prediction
    switch_backend(qtbot, window, "torch")
    top = window.selected_entry().predictions
    window.show_detail("features")
    features.layer_box.setCurrentText(DEEP)
    reference = wait_features(qtbot, features, DEEP)

    def keep_classifying() -> None:
        """A batch runs while each explanation is asked for (dropped again if it ended)."""
        if not window.cancel_button.isVisible():
            drop(window, [big_batch[0].parent])
            qtbot.waitUntil(lambda: first_result_arrived(window), timeout=WAIT_MS)
        assert window.runner.active

    wrong_maps, last = 0, reference
    for i in range(6):  # recolour: the same maps are computed again
        keep_classifying()
        features.colormap_box.setCurrentIndex((i + 1) % 2)
        last = wait_features(qtbot, features, DEEP, after=last)
        wrong_maps += not np.allclose(last.maps, reference.maps, atol=1e-4)
    window.show_detail("prediction")
    prediction.cam_toggle.setChecked(True)
    for i in range(6):  # Grad-CAM for the first and second class in turn
        keep_classifying()
        failed = len(errors(window))
        qtbot.mouseClick(class_button(window, (i + 1) % 2), Qt.MouseButton.LeftButton)
        wanted = f"Grad-CAM for “{top[(i + 1) % 2].label}”"
        qtbot.waitUntil(
            lambda wanted=wanted, failed=failed: (
                prediction.cam_label.text().startswith(wanted) or len(errors(window)) > failed
            ),
            timeout=WAIT_MS,
        )
    window.cancel_classification()
    assert (wrong_maps, errors(window)) == (0, []), f"{wrong_maps} of 6 feature maps wrong"
