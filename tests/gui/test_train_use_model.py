"""A trained model becomes the window's model only through *Use this model*, and the Train
tab never silently overwrites an existing model: it proposes a free name, asks before
replacing a chosen one, shows where a cancelled run's best model went, and asks before using
a model whose ONNX export check failed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from cnn_desktop.core.models.bundle import load_bundle
from cnn_desktop.core.training import output as train_output
from cnn_desktop.core.training.config import TrainConfig
from cnn_desktop.core.training.run import train
from cnn_desktop.gui.runner import TaskRunner
from cnn_desktop.gui.train_panel import TrainPanel
from tests.cli.test_train_output import tree_digest
from tests.datasets import write_digits_dataset
from tests.gui.conftest import CATS, drop, isolated_settings, wait_all_classified

SCAN_MS = 20_000
TRAIN_MS = 90_000
Yes, No = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    folder = tmp_path / "digits"
    write_digits_dataset(folder, per_class=12, classes=range(3))
    return folder


@pytest.fixture
def older_model(tmp_path: Path) -> Path:
    """A real model of the digits 3 and 4 where the Train tab's default would save:
    ``digits.cnnmodel`` beside the data folder."""
    data = tmp_path / "older"
    write_digits_dataset(data, per_class=6, classes=(3, 4))
    config = TrainConfig(mode="scratch", arch="lenet5", epochs=1)
    return list(train(data, tmp_path / "digits", config))[-1].result.bundle.path


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Record the questions asked; answer each with the next queued reply (No when none)."""
    asked: dict[str, list] = {"question": [], "warning": [], "replies": []}

    def reply(kind: str):
        def ask(_parent, title, text, *_args):
            asked[kind].append((title, text))
            return asked["replies"].pop(0) if asked["replies"] else No

        return ask

    for kind in ("question", "warning"):
        monkeypatch.setattr(QMessageBox, kind, reply(kind))
    return asked


def scan(qtbot, panel: TrainPanel, folder: Path) -> None:
    panel.set_data_folder(folder)
    qtbot.waitUntil(lambda: panel.report is not None, timeout=SCAN_MS)


def train_lenet(qtbot, panel: TrainPanel, epochs: int = 2) -> None:
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("scratch"))
    panel.arch_combo.setCurrentIndex(panel.arch_combo.findData("lenet5"))
    panel.epochs_spin.setValue(epochs)
    assert panel.start() is not None
    qtbot.waitUntil(lambda: panel.handle is None, timeout=TRAIN_MS)
    assert panel.result is not None, panel.run_view.status()


@pytest.fixture
def panel(qtbot, tmp_path: Path):
    runner = TaskRunner()
    panel = TrainPanel(runner, isolated_settings(tmp_path / "settings.ini"))
    qtbot.addWidget(panel)
    yield panel
    runner.shutdown(30)


def test_a_finished_run_becomes_the_active_model_only_through_use_this_model(
    qtbot, window, photos, digits, tmp_path
) -> None:
    drop(window, [photos["chelsea"]])
    wait_all_classified(qtbot, window, 1)
    before, status = window.active_model, window.model_label.text()
    assert window.results.entries()[0].top1.label in CATS
    window.show_training()
    panel = window.train_panel
    scan(qtbot, panel, digits)
    train_lenet(qtbot, panel)
    qtbot.waitUntil(lambda: not window.runner.active, timeout=SCAN_MS)

    assert window.active_model is before and window.model_label.text() == status
    assert panel.result.metrics["export_check"]["passed"]
    entry = window.results.entries()[0]
    assert not entry.pending and entry.top1.label in CATS  # the gallery was left alone
    button = panel.results.use_button
    assert button.isEnabled() and button.text() == "Use this model"

    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.active_model is not before, timeout=SCAN_MS)
    assert window.active_model.bundle.path == tmp_path / "digits.cnnmodel"
    assert window.model_label.text().startswith("digits · 3 classes")
    wait_all_classified(qtbot, window, 1)
    assert window.results.entries()[0].top1.label in {"0", "1", "2"}


def test_the_default_output_is_a_free_name_beside_the_data(
    qtbot, panel, digits, older_model, tmp_path, answers
) -> None:
    before = tree_digest(older_model)
    scan(qtbot, panel, digits)
    assert panel.output_edit.text() == str(tmp_path / "digits-2.cnnmodel")
    train_lenet(qtbot, panel, epochs=1)
    assert panel.result.bundle.path == tmp_path / "digits-2.cnnmodel"
    # The next run's default moves on to a free name again: nothing is asked or replaced.
    train_lenet(qtbot, panel, epochs=1)
    assert panel.result.bundle.path == tmp_path / "digits-3.cnnmodel"
    assert panel.output_edit.text() == str(tmp_path / "digits-3.cnnmodel")
    assert answers["question"] == []
    assert tree_digest(older_model) == before


def choose_existing(qtbot, panel: TrainPanel, data: Path, model: Path) -> dict[str, str]:
    """Scan ``data`` and type an existing model's path under *Save to*; its files' digests."""
    scan(qtbot, panel, data)
    panel.output_edit.setText(str(model))
    return tree_digest(model)


def test_choosing_an_existing_model_asks_before_replacing_it(
    qtbot, panel, digits, older_model, answers
) -> None:
    before = choose_existing(qtbot, panel, digits, older_model)
    assert panel.start() is None  # answered No
    assert len(answers["question"]) == 1 and str(older_model) in answers["question"][0][1]
    assert panel.handle is None and "Not started" in panel.run_view.status()
    assert tree_digest(older_model) == before

    answers["replies"].append(Yes)
    train_lenet(qtbot, panel)
    assert len(answers["question"]) == 2
    assert panel.result.replaced and panel.result.bundle.path == older_model
    assert f"Replaced the previous model at {older_model}" in panel.run_view.status()
    assert load_bundle(older_model).spec.class_names == ("0", "1", "2")


def test_a_cancelled_run_keeps_the_existing_model_and_shows_where_its_best_model_is(
    qtbot, panel, digits, older_model, answers
) -> None:
    before = choose_existing(qtbot, panel, digits, older_model)
    answers["replies"].append(Yes)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("scratch"))
    panel.arch_combo.setCurrentIndex(panel.arch_combo.findData("resnet18"))
    panel.epochs_spin.setValue(40)
    used = []
    panel.use_model.connect(used.append)
    panel.start()
    qtbot.waitUntil(lambda: panel.run_view.curves.epoch_points() >= 1, timeout=TRAIN_MS)
    panel.cancel()
    qtbot.waitUntil(lambda: panel.handle is None, timeout=TRAIN_MS)

    result = panel.result
    assert result is not None and result.cancelled and not result.replaced
    kept = result.bundle.path
    assert re.fullmatch(r"digits\.cancelled-\d{8}-\d{6}\.cnnmodel", kept.name)
    status = panel.run_view.status()
    assert f"Kept the previous model at {older_model}; the new one is at {kept}" in status
    assert str(kept) in panel.results.headline.text()
    assert tree_digest(older_model) == before
    assert load_bundle(kept).spec.class_names == ("0", "1", "2")
    assert used == []
    qtbot.mouseClick(panel.results.use_button, Qt.MouseButton.LeftButton)
    assert used == [str(kept)]


def test_a_model_whose_export_check_failed_is_used_only_after_a_warning(
    qtbot, panel, digits, tmp_path, answers, monkeypatch
) -> None:
    def mismatch(*_args, **_kwargs) -> dict:
        return {"images": 4, "top1_agreement": 0.5, "max_abs_difference": 0.3, "passed": False}

    monkeypatch.setattr(train_output, "export_check", mismatch)
    used = []
    panel.use_model.connect(used.append)
    scan(qtbot, panel, digits)
    train_lenet(qtbot, panel, epochs=1)
    button = panel.results.use_button
    assert "FAILED" in panel.results.check_label.text()
    assert button.isEnabled() and button.text() == "Use this model anyway…"
    assert "did not pass" in button.toolTip()
    assert "color" in panel.run_view.status_label.styleSheet()  # the status is in red

    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)  # answered No
    assert len(answers["warning"]) == 1 and used == []
    answers["replies"].append(Yes)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert used == [str(tmp_path / "digits.cnnmodel")]
