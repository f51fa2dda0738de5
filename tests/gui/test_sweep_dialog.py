"""The Train tab's *Sweep…* as a user drives it: a real Optuna sweep over head runs on real
digits, every trial in the table and in the run store, the best model opened in one click,
and *Stop* keeping what finished."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnn_desktop.core.models import load_bundle
from cnn_desktop.core.runs import RunStore
from cnn_desktop.gui.runner import TaskRunner
from cnn_desktop.gui.train_panel import TrainPanel
from tests.datasets import write_digits_dataset
from tests.gui.conftest import isolated_settings

SWEEP_MS = 120_000


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    monkeypatch.setenv("CNN_DESKTOP_RUNS_DIR", str(tmp_path / "runs"))
    return RunStore(tmp_path / "runs")


@pytest.fixture
def panel(qtbot, tmp_path: Path, store):
    runner = TaskRunner()
    panel = TrainPanel(runner, isolated_settings(tmp_path / "settings.ini"))
    qtbot.addWidget(panel)
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=15, classes=range(3))
    panel.set_data_folder(data)
    qtbot.waitUntil(lambda: panel.report is not None and not runner.active, timeout=20_000)
    panel.epochs_spin.setValue(4)
    yield panel
    runner.shutdown(30)


def open_sweep(panel: TrainPanel):
    panel.sweep_button.click()
    dialog = panel.sweep_dialog
    assert dialog.isVisible()
    return dialog


def test_a_sweep_fills_the_table_records_each_trial_and_opens_the_best(qtbot, panel, store):
    dialog = open_sweep(panel)
    assert not dialog.checks["augment"].isEnabled()  # head mode: no augmentation to vary
    dialog.trials.setValue(3)
    for name, box in dialog.checks.items():
        box.setChecked(name in ("lr", "epochs"))
    assert dialog.start() is not None
    assert not dialog.start_button.isEnabled() and dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.handle is None, timeout=SWEEP_MS)
    table = dialog.table
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == ["0", "1", "2"]
    assert table.item(0, 2).text() == "lr 0.003, epochs 4"  # trial 0: the tab's options
    assert dialog.status.text().startswith("Best: trial ")
    best = load_bundle(dialog.result.out)
    assert best.path == Path(panel.output_edit.text())
    runs = store.runs()
    assert sorted(r["tags"]["trial"] for r in runs) == ["0", "1", "2"]
    with qtbot.waitSignal(panel.use_model) as opened:
        dialog.use_button.click()
    assert opened.args == [str(best.path)]


def test_stop_keeps_the_finished_trials_and_the_best_model(qtbot, panel, store):
    dialog = open_sweep(panel)
    dialog.trials.setValue(50)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.progress.value() >= 1, timeout=SWEEP_MS)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog.handle is None, timeout=SWEEP_MS)
    assert dialog.result is not None and dialog.result.interrupted
    assert dialog.status.text().startswith("Stopped. Best: trial ")
    assert load_bundle(dialog.result.out).path.is_dir()
    assert dialog.start_button.isEnabled() and dialog.use_button.isEnabled()
    assert len(store.runs()) < 50
