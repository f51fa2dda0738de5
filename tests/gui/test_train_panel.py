"""The Train tab as a user drives it: scan a folder, see what is wrong with it, train a small
network from scratch and judge it, cancel a longer run and keep the best model so far."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from cnn_desktop.core.models.bundle import load_bundle
from cnn_desktop.core.training.config import TrainEvent
from cnn_desktop.gui.runner import TaskRunner
from cnn_desktop.gui.train_panel import TrainPanel
from cnn_desktop.gui.widgets import training_curves
from tests.datasets import write_digits_dataset, write_junk
from tests.gui.conftest import isolated_settings

SCAN_MS = 20_000
TRAIN_MS = 90_000
PER_CLASS = 20


@pytest.fixture
def runner(qtbot):
    runner = TaskRunner()
    yield runner
    runner.shutdown(30)


@pytest.fixture
def panel(qtbot, runner, tmp_path: Path) -> TrainPanel:
    panel = TrainPanel(runner, isolated_settings(tmp_path / "settings.ini"))
    qtbot.addWidget(panel)
    panel.resize(1300, 850)
    return panel


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of handwritten digits, 20 images each at 28×28."""
    folder = tmp_path_factory.mktemp("data") / "digits"
    write_digits_dataset(folder, per_class=PER_CLASS, classes=range(3))
    return folder


def scan(qtbot, panel: TrainPanel, folder: Path) -> None:
    panel.set_data_folder(folder)
    qtbot.waitUntil(lambda: not panel.runner.active, timeout=SCAN_MS)


def choose(panel: TrainPanel, mode: str, arch: str, epochs: int, batch: int = 16) -> None:
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData(mode))
    panel.arch_combo.setCurrentIndex(panel.arch_combo.findData(arch))
    panel.epochs_spin.setValue(epochs)
    panel.batch_spin.setValue(batch)


def test_scan_report_lists_classes_skipped_files_and_sets_the_output(qtbot, panel, tmp_path):
    folder = tmp_path / "digits"
    write_digits_dataset(folder, per_class=6, classes=range(3))
    junk = write_junk(folder)
    assert not panel.start_button.isEnabled()
    scan(qtbot, panel, folder)
    table = panel.class_table
    rows = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert rows == {"0": "6", "1": "6", "2": "6"}
    assert "3 classes, 18 images" in panel.scan_label.text()
    assert panel.skipped_list.count() == len(panel.report.skipped) == len(junk)
    assert f"{panel.skipped_list.count()} file(s) skipped" in panel.skipped_label.text()
    skipped = [panel.skipped_list.item(i).text() for i in range(panel.skipped_list.count())]
    assert any("not an image type (.txt)" in text for text in skipped)
    assert any("EPS needs an external interpreter" in text for text in skipped)
    assert panel.start_button.isEnabled()
    assert panel.output_edit.text() == str(tmp_path / "digits.cnnmodel")
    assert panel.settings.qsettings.value("train/data_folder") == str(folder)


def test_a_single_class_folder_is_refused_in_red_and_start_stays_disabled(qtbot, panel, tmp_path):
    folder = tmp_path / "one"
    write_digits_dataset(folder, per_class=5, classes=[7])
    scan(qtbot, panel, folder)
    assert "only one class" in panel.scan_label.text()
    assert "color" in panel.scan_label.styleSheet()
    assert panel.report is None
    assert not panel.start_button.isEnabled()
    assert panel.class_table.isHidden()


def test_last_folder_mode_and_epochs_come_back_and_the_folder_is_scanned_when_shown(
    qtbot, runner, tmp_path, digits
):
    settings = isolated_settings(tmp_path / "settings.ini")
    for key, value in (("data_folder", str(digits)), ("mode", "scratch"), ("epochs", 7)):
        settings.qsettings.setValue(f"train/{key}", value)
    panel = TrainPanel(runner, settings)
    qtbot.addWidget(panel)
    assert (panel.mode, panel.epochs_spin.value()) == ("scratch", 7)
    assert panel.folder_edit.text() == str(digits) and panel.report is None
    panel.show()
    qtbot.waitUntil(lambda: panel.report is not None, timeout=SCAN_MS)
    assert panel.report.total == 3 * PER_CLASS
    assert panel.output_edit.text() == str(digits.parent / "digits.cnnmodel")


def test_mode_sets_defaults_and_the_augmentation_preview_follows_the_choice(qtbot, panel, digits):
    choose(panel, "full", "resnet18", 8)
    assert not panel.arch_combo.isEnabled()
    assert panel.augment.names() == ("flip", "crop")  # the full fine-tune defaults
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("head"))
    assert panel.epochs_spin.value() == 60
    assert panel.augment.names() == ()  # head mode trains on embeddings: nothing to augment
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("scratch"))
    assert panel.arch_combo.isEnabled() and panel.epochs_spin.value() == 30
    scan(qtbot, panel, digits)
    preview = panel.augment.preview
    qtbot.waitUntil(lambda: len(preview.images) == 8, timeout=SCAN_MS)
    # Digits are 28 px; ResNet-18 trains at its minimum of 32 px, and the preview shows that.
    assert {(i.width(), i.height()) for i in preview.images} == {(32, 32)}
    assert "crop" in preview.caption.text()
    panel.augment.boxes["vflip"].setChecked(True)
    qtbot.waitUntil(lambda: "vflip" in preview.caption.text(), timeout=SCAN_MS)
    assert panel.settings.qsettings.value("train/mode") == "scratch"


def test_training_from_scratch_shows_curves_results_and_offers_the_model(
    qtbot, panel, digits, tmp_path
):
    scan(qtbot, panel, digits)
    choose(panel, "scratch", "lenet5", 3)
    (tmp_path / "out").mkdir()
    panel.output_edit.setText(str(tmp_path / "out" / "digits.cnnmodel"))
    used, shown = [], []
    panel.use_model.connect(used.append)
    panel.show_image.connect(lambda path, index: shown.append((path, index)))
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert not panel.start_button.isEnabled() and not panel.options.isEnabled()
    qtbot.waitUntil(lambda: panel.handle is None, timeout=TRAIN_MS)

    assert "Training failed" not in panel.run_view.status()
    curves = panel.run_view.curves
    assert curves.epoch_points() == 3
    assert len(curves.series["val_accuracy"][1]) == 3
    assert len(curves.series["step_loss"][0]) >= 3
    assert "Epoch 3/3" in panel.run_view.epoch_label.text()
    results = panel.results
    assert "Validation accuracy:" in results.headline.text()
    assert "✓ ONNX export verified" in results.check_label.text()
    assert "top-1 agreement 100%" in results.check_label.text()
    assert results.per_class.rowCount() == 3
    matrix = results.matrix
    assert (matrix.table.rowCount(), matrix.table.columnCount()) == (3, 3)
    val_images = panel.result.metrics["training"]["val_images"]
    assert matrix.total() == val_images == 3 * round(PER_CLASS * 0.2)
    assert used == []  # a finished run is offered, not switched to
    assert results.use_button.isEnabled() and results.use_button.text() == "Use this model"
    qtbot.mouseClick(results.use_button, Qt.MouseButton.LeftButton)
    assert used == [str(tmp_path / "out" / "digits.cnnmodel")] and Path(used[0]).is_dir()
    assert panel.start_button.isEnabled() and panel.options.isEnabled()
    assert panel.settings.qsettings.value("train/epochs") in (3, "3")

    matrix.cell_clicked.emit(0, 0)
    assert "not listed" in results.cell_images.title.text()
    assert results.cell_images.list.count() == 0
    assert shown == []  # a mistake's image is shown once clicked: test_train_mistakes.py

    exported = tmp_path / "exported.onnx"
    handle = panel.results.export_onnx(str(exported))
    qtbot.waitUntil(lambda: handle.done.is_set(), timeout=SCAN_MS)
    assert load_bundle(exported).spec.class_names == ("0", "1", "2")
    panel.grab().save(str(tmp_path / "train_panel.png"))


def test_cancel_stops_within_seconds_and_keeps_the_best_model(qtbot, panel, digits, tmp_path):
    scan(qtbot, panel, digits)
    choose(panel, "scratch", "resnet18", 40)
    panel.output_edit.setText(str(tmp_path / "cancelled.cnnmodel"))
    used = []
    panel.use_model.connect(used.append)
    panel.start()
    qtbot.waitUntil(lambda: panel.run_view.curves.epoch_points() >= 1, timeout=TRAIN_MS)
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.runner.active, timeout=15_000)
    assert "cancelled" in panel.run_view.status().lower()
    assert "best model so far was saved" in panel.run_view.status()
    assert panel.result is not None and panel.result.cancelled
    assert load_bundle(tmp_path / "cancelled.cnnmodel").spec.num_classes == 3
    assert str(tmp_path / "cancelled.cnnmodel") in panel.run_view.status()  # says where
    assert panel.run_view.curves.epoch_points() < 40
    assert "Cancelled" in panel.results.headline.text()
    assert used == []  # no run becomes the active model by itself
    assert panel.start_button.isEnabled()


def test_step_events_reach_the_ui_thread_at_most_about_twenty_times_a_second(monkeypatch):
    def fake_train(*_args, **_kwargs):
        for step in range(2000):
            yield TrainEvent("step", epoch=1, epochs=1, step=step + 1, steps=2000, loss=1.0)
        yield TrainEvent("epoch", epoch=1, epochs=1, loss=1.0, accuracy=0.5)

    class Context:
        cancel = None

        def __init__(self) -> None:
            self.items: list[TrainEvent] = []

        def emit(self, item: TrainEvent) -> None:
            self.items.append(item)

    monkeypatch.setattr(training_curves, "recorded_train", fake_train)
    context = Context()
    training_curves.run_training(context, "data", "out", None)
    steps = [e for e in context.items if e.kind == "step"]
    assert 1 <= len(steps) < 50
    assert steps[-1].step == 2000  # the latest step is never lost
    assert context.items[-1].kind == "epoch"
    assert not math.isnan(steps[-1].loss)
