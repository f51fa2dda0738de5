"""The Train tab shows a reliability diagram (accuracy per confidence bin, before and after
calibration, against the diagonal) once a real head-mode run in the window has finished."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnn_desktop.gui.main_window import MainWindow
from tests.core.test_calibration import write_split_digits

SCAN_MS = 20_000
TRAIN_MS = 120_000


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    return write_split_digits(tmp_path / "digits", classes=3, per_class=20)


def test_the_reliability_diagram_shows_after_a_head_training_in_the_window(
    qtbot, window: MainWindow, digits: Path
) -> None:
    window.resize(1400, 900)
    window.show_training()
    panel = window.train_panel
    diagram = panel.results.reliability
    assert diagram is not None and not diagram.isVisible()  # nothing before a run
    panel.set_data_folder(digits)
    qtbot.waitUntil(lambda: panel.report is not None, timeout=SCAN_MS)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("head"))
    panel.epochs_spin.setValue(15)
    assert panel.start() is not None
    qtbot.waitUntil(lambda: panel.handle is None, timeout=TRAIN_MS)
    assert panel.result is not None, panel.run_view.status()

    block = json.loads((panel.result.bundle.path / "metrics.json").read_text())["calibration"]
    test = block["test"]  # the held-out images are the ones shown
    qtbot.waitUntil(diagram.isVisible, timeout=SCAN_MS)
    accuracies = {
        which: [b["accuracy"] for b in test[f"bins_{which}"] if b["count"]]
        for which in ("before", "after")
    }
    for which in ("before", "after"):
        assert diagram.bar_heights(which) == pytest.approx(accuracies[which])
        assert diagram.drawn_heights(which) == pytest.approx(accuracies[which])
    assert diagram.evaluated_on == "test"
    caption = diagram.caption.text()
    assert f"temperature {block['temperature']:.2f}" in caption
    assert f"{test['ece_before']:.3f} before → {test['ece_after']:.3f} after" in caption

    # A new run starts with no diagram from the last one.
    panel.results.clear()
    assert not diagram.isVisible() and diagram.drawn_heights("after") == []
