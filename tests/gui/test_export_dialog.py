"""File → Export Model… in the real window: a trained model's INT8 export runs in the
background, shows its progress and parity report and tells the notification area; a bad
choice is a message in the dialog and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from cnn_desktop.core.models import load_bundle
from cnn_desktop.gui.export_dialog import ExportDialog
from cnn_desktop.gui.main_window import MainWindow
from tests.gui.conftest import LOAD_TIMEOUT_MS
from tests.int8_models import train_digits_head

EXPORT_MS = 180_000


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    return train_digits_head(tmp_path_factory.mktemp("trained"))


def open_dialog(window: MainWindow) -> ExportDialog:
    """Choose File → Export Model… as a user would."""
    entry = next(
        a for a in window.menuBar().actions()[0].menu().actions() if "Export Model" in a.text()
    )
    entry.trigger()
    dialog = window.findChild(ExportDialog)
    assert dialog is not None and dialog.isVisible()
    return dialog


def test_int8_export_of_the_open_model_shows_the_parity_report(qtbot, window, trained, tmp_path):
    _, source = trained
    window.open_model(str(source.path))
    qtbot.waitUntil(lambda: window.active_model.bundle.path == source.path, timeout=LOAD_TIMEOUT_MS)
    dialog = open_dialog(window)
    assert dialog.model_label.text() == source.name
    out = tmp_path / "digits-int8.cnnmodel"
    dialog.out_edit.setText(str(out))
    dialog.int8_box.setChecked(True)
    assert dialog.calibration_edit.isEnabled()
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert dialog.running and dialog.close_button.text() == "Cancel"
    assert not dialog.export_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.running, timeout=EXPORT_MS)
    assert dialog.status.text() == f"Saved {out}", dialog.status.text()
    assert "Top-1 agreement with float" in dialog.report.text()
    assert "Accuracy: float" in dialog.report.text()
    assert load_bundle(out).spec.provenance["precision"] == "int8"
    assert any("Exported the INT8 model" in text for _, text in window.notifications.messages)


def test_int8_export_of_the_built_in_model_without_images_says_what_to_do(qtbot, window, tmp_path):
    dialog = open_dialog(window)
    out = tmp_path / "lite0-int8.cnnmodel"
    dialog.out_edit.setText(str(out))
    dialog.int8_box.setChecked(True)
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.running, timeout=EXPORT_MS)
    assert dialog.status.text().startswith("Export failed: ")
    assert "give a folder of typical images to calibrate on" in dialog.status.text()
    assert not out.exists() and dialog.export_button.isEnabled()
    assert list(Path(tmp_path).glob("*.cnnmodel")) == []
