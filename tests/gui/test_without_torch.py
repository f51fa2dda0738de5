"""The window in an installation without PyTorch (the lite build): what needs torch is shown
disabled with the reason, a saved torch choice falls back, and classification still works."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.gui.conftest import CATS, isolated_settings, wait_all_classified


@pytest.fixture
def without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every import of torch, torchvision and timm fails for the test, as in the lite build."""
    for name in ("torch", "torchvision", "timm"):
        monkeypatch.setitem(sys.modules, name, None)


def test_torch_backend_and_modes_are_disabled_with_the_reason(
    qtbot, tmp_path: Path, make_window, photos, without_torch
) -> None:
    settings = isolated_settings(tmp_path / "settings.ini")
    settings.backend = "torch"  # chosen earlier in a build with PyTorch
    settings.qsettings.setValue("train/mode", "full")
    settings.qsettings.sync()
    window = make_window(tmp_path / "settings.ini")

    torch_action = window.actions_.backend["torch"]
    assert not torch_action.isEnabled()
    assert "not in this installation" in torch_action.text()
    assert window.actions_.backend["onnx"].isChecked()
    assert window.active_model is not None and window.active_model.classifier.backend == "onnx"

    combo = window.train_panel.mode_combo
    items = {combo.itemData(row): row for row in range(combo.count())}
    model = combo.model()
    assert model.item(items["head"]).isEnabled()
    for mode in ("full", "scratch"):
        assert not model.item(items[mode]).isEnabled()
        assert "needs PyTorch" in combo.itemText(items[mode])
        assert "no PyTorch" in combo.itemData(items[mode], Qt.ItemDataRole.ToolTipRole)
    assert window.train_panel.mode == "head"  # the saved "full" falls back

    window.add_inputs([photos["chelsea"]])
    wait_all_classified(qtbot, window, 1)
    assert window.results.entry(0).predictions[0].label in CATS
