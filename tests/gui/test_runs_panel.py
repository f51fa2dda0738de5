"""The Runs tab of the real window on records written by real head-mode trainings: the Train
tab's folder's runs (all with the box off, free text), sorting, two runs compared, Delete (asks;
the model only when ticked), Re-run in the Train tab (refused when the data changed), Open
model, and a corrupt record reported once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QItemSelectionModel, QPoint, Qt
from PySide6.QtWidgets import QMessageBox

from cnn_desktop.core.runs import RunStore, recorded_train
from cnn_desktop.core.training import TrainConfig
from cnn_desktop.gui.main_window import MainWindow
from cnn_desktop.gui.runs_model import COLUMN, RecordRole, SortRole
from cnn_desktop.gui.runs_panel import RunsPanel
from tests.datasets import write_digits_dataset
from tests.gui.conftest import errors

TRAIN_MS = 90_000
SCAN_MS = 20_000
# Three runs on one folder that end with three different validation accuracies.
CONFIGS = (
    TrainConfig(epochs=3),
    TrainConfig(epochs=1, lr=1e-5),
    TrainConfig(epochs=3, lr=0.3),
)
Yes, No = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No


def train_recorded(data: Path, out: Path, config: TrainConfig, store: RunStore) -> dict:
    """One real recorded run; its record."""
    events = list(recorded_train(data, out, config, store=store))
    return store.get(events[-1].data["run_id"])


def write_digits(folder: Path, classes=range(3)) -> Path:
    write_digits_dataset(folder, per_class=15, classes=classes)
    return folder


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A store with three runs on ``digits`` and one on ``letters`` (other digits)."""
    root = tmp_path_factory.mktemp("recorded")
    digits, other = write_digits(root / "digits"), write_digits(root / "letters", (3, 4, 5))
    store = RunStore(root / "runs")
    runs = [train_recorded(digits, root / f"m{n}", c, store) for n, c in enumerate(CONFIGS)]
    train_recorded(other, root / "other", TrainConfig(epochs=2), store)
    return {"root": root / "runs", "digits": digits, "other": other, "runs": runs}


@pytest.fixture
def store(recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunStore:
    """A copy of the recorded store, the one this test's window (and its trainings) use."""
    root = tmp_path / "runs"
    shutil.copytree(recorded["root"], root)
    monkeypatch.setenv("CNN_DESKTOP_RUNS_DIR", str(root))
    return RunStore(root)


def open_runs(qtbot, window: MainWindow, rows: int) -> RunsPanel:
    """Show the Runs tab and wait until the store's ``rows`` runs are read."""
    window.show_runs()
    panel = window.runs_panel
    qtbot.waitUntil(lambda: panel.source.rowCount() == rows, timeout=SCAN_MS)
    return panel


def shown(panel: RunsPanel, column: str = "Started") -> list:
    """The values of a column, in the order the table shows them."""
    return [
        panel.proxy.index(row, COLUMN[column]).data(SortRole)
        for row in range(panel.proxy.rowCount())
    ]


def select(panel: RunsPanel, *run_ids: str) -> None:
    """Select the rows of ``run_ids`` (as Ctrl-clicks would)."""
    selection = panel.table.selectionModel()
    selection.clearSelection()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for row in range(panel.proxy.rowCount()):
        index = panel.proxy.index(row, 0)
        if index.data(RecordRole)["id"] in run_ids:
            selection.select(index, flags)
    assert len(panel.selected_records()) == len(run_ids)


def click(qtbot, button) -> None:
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def answer_delete(monkeypatch: pytest.MonkeyPatch, reply, tick: bool = False) -> list[str]:
    """Answer the Delete question with ``reply`` (ticking its box when ``tick``); the texts
    of the questions asked."""
    asked = []

    def exec_(box: QMessageBox) -> int:
        asked.append(box.text())
        box.checkBox().setChecked(tick)
        return reply

    monkeypatch.setattr(QMessageBox, "exec", exec_)
    return asked


def test_the_train_tabs_folder_shows_its_runs_and_the_box_and_text_filter_the_rest(
    qtbot, store, window, recorded
):
    window.train_panel.set_data_folder(recorded["digits"])
    panel = open_runs(qtbot, window, rows=4)
    ids = {r["id"] for r in recorded["runs"]}
    assert {panel.proxy.index(r, 0).data(RecordRole)["id"] for r in range(3)} == ids
    assert set(shown(panel, "Data")) == {str(recorded["digits"])}
    assert panel.count_label.text() == "3 of 4 runs"
    assert panel.folder_check.text() == "Only runs of digits"

    panel.folder_check.setChecked(False)
    assert panel.proxy.rowCount() == 4
    qtbot.keyClicks(panel.search_edit, "1e-05")
    assert shown(panel, "LR") == [1e-5]
    panel.search_edit.clear()
    panel.folder_check.setChecked(True)

    window.train_panel.set_data_folder(recorded["other"])  # reopening a folder: its history
    assert set(shown(panel, "Data")) == {str(recorded["other"])}
    window.train_panel.set_data_folder(recorded["digits"])
    assert panel.proxy.rowCount() == 3


def test_clicking_the_accuracy_header_sorts_by_the_figure_unknown_last(
    qtbot, store, window, recorded
):
    window.train_panel.set_data_folder(recorded["digits"])
    panel = open_runs(qtbot, window, rows=4)
    header = panel.table.horizontalHeader()
    column = COLUMN["Val. accuracy"]
    where = QPoint(header.sectionViewportPosition(column) + 10, header.height() // 2)
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=where)
    ascending = shown(panel, "Val. accuracy")
    assert ascending == sorted(ascending) and len(set(ascending)) == 3
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=where)
    assert shown(panel, "Val. accuracy") == sorted(ascending, reverse=True)

    # A run that failed has no accuracy: it stays below the others, in either order.
    failed = dict(recorded["runs"][0], id="20200101-000000-failed", status="failed", metrics={})
    panel.source.set_records([*panel.source.records(), failed])
    assert shown(panel, "Val. accuracy")[-1] is None
    panel.table.sortByColumn(column, Qt.SortOrder.AscendingOrder)
    assert shown(panel, "Val. accuracy") == [*ascending, None]


def test_two_selected_runs_draw_two_curves_and_show_the_config_keys_that_differ(
    qtbot, store, window, recorded
):
    window.train_panel.set_data_folder(recorded["digits"])
    panel = open_runs(qtbot, window, rows=4)
    first, second = recorded["runs"][0], recorded["runs"][1]  # epochs 3 vs 1, lr 0.003 vs 1e-5
    select(panel, first["id"], second["id"])

    drawn = panel.curves.drawn
    assert set(drawn) == {first["id"], second["id"]}
    assert len(drawn[first["id"]]["val_accuracy"][0]) == 3
    assert len(drawn[second["id"]]["val_accuracy"][0]) == 1
    expected = [100 * row["val_accuracy"] for row in first["history"]]
    assert drawn[first["id"]]["val_accuracy"][1] == pytest.approx(expected)
    assert len(drawn[first["id"]]["val_loss"][1]) == 3
    labels = panel.curves.legend_labels()
    assert len(labels) == 2 and all("epochs" in label and "lr" in label for label in labels)

    assert panel.differing_keys() == ["epochs", "lr"]  # same data, versions, device
    table = panel.diff_table
    columns = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    values = {columns[c]: table.item(0, c).text() for c in range(2)}
    assert values == {first["id"]: "3", second["id"]: "1"}
    assert "differs in epochs, lr" in panel.compare_label.text()

    select(panel, first["id"])  # one run: its curves, nothing to compare
    assert list(panel.curves.drawn) == [first["id"]] and panel.differing_keys() == []


def test_delete_asks_then_removes_the_record_and_the_model_only_with_the_box(
    qtbot, make_window, tmp_path, monkeypatch
):
    monkeypatch.setenv("CNN_DESKTOP_RUNS_DIR", str(tmp_path / "runs"))
    data, store = write_digits(tmp_path / "digits"), RunStore(tmp_path / "runs")
    keep, gone = (train_recorded(data, tmp_path / n, CONFIGS[1], store) for n in ("a", "b"))
    window = make_window()
    window.train_panel.set_data_folder(data)
    panel = open_runs(qtbot, window, rows=2)

    asked = answer_delete(monkeypatch, No, tick=True)
    select(panel, keep["id"])
    click(qtbot, panel.delete_button)
    assert len(asked) == 1 and keep["id"] in asked[0]
    assert len(store.runs()) == 2 and Path(keep["bundle"]).is_dir()  # No: nothing deleted

    answer_delete(monkeypatch, Yes)  # the box left unticked: the record only
    click(qtbot, panel.delete_button)
    qtbot.waitUntil(lambda: panel.source.rowCount() == 1, timeout=SCAN_MS)
    assert [r["id"] for r in store.runs()] == [gone["id"]]
    assert Path(keep["bundle"]).is_dir()

    answer_delete(monkeypatch, Yes, tick=True)
    select(panel, gone["id"])
    click(qtbot, panel.delete_button)
    qtbot.waitUntil(lambda: panel.source.rowCount() == 0, timeout=SCAN_MS)
    assert store.runs() == [] and not Path(gone["bundle"]).exists()
    assert not errors(window)


@pytest.fixture
def one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, RunStore, dict]:
    """The data, the store (the window's) and the record of one run trained on it."""
    monkeypatch.setenv("CNN_DESKTOP_RUNS_DIR", str(tmp_path / "runs"))
    data, store = write_digits(tmp_path / "digits"), RunStore(tmp_path / "runs")
    return data, store, train_recorded(data, tmp_path / "model", CONFIGS[0], store)


def rerun_in_window(qtbot, make_window, data: Path, record: dict) -> tuple[MainWindow, RunsPanel]:
    """Open the window, select ``record`` in the Runs tab and click Re-run."""
    window = make_window()
    window.train_panel.set_data_folder(data)
    panel = open_runs(qtbot, window, rows=1)
    select(panel, record["id"])
    click(qtbot, panel.rerun_button)
    assert window.mode_tabs.currentWidget() is window.train_panel
    return window, panel


def test_a_rerun_whose_data_changed_shows_the_error_and_records_nothing(
    qtbot, make_window, tmp_path, one_run
):
    data, store, original = one_run
    Image.new("L", (28, 28), 200).save(data / "0" / "new.png")
    window, _ = rerun_in_window(qtbot, make_window, data, original)

    train = window.train_panel
    qtbot.waitUntil(lambda: train.handle is None and bool(errors(window)), timeout=TRAIN_MS)
    assert "has changed since run " + original["id"] in errors(window)[-1]
    assert "new.png" in errors(window)[-1]
    assert "has changed" in train.run_view.status()
    assert [r["id"] for r in store.runs()] == [original["id"]]
    assert not (tmp_path / "model-rerun.cnnmodel").exists()


def test_a_rerun_trains_in_the_train_tab_and_the_table_lists_it_when_it_ends(
    qtbot, make_window, tmp_path, one_run
):
    data, store, original = one_run
    window, panel = rerun_in_window(qtbot, make_window, data, original)

    train = window.train_panel
    qtbot.waitUntil(lambda: train.handle is None, timeout=TRAIN_MS)
    assert train.result is not None, train.run_view.status()
    assert train.run_view.curves.epoch_points() == 3  # the Train tab's own curves
    assert train.result.bundle.path == tmp_path / "model-rerun.cnnmodel"
    qtbot.waitUntil(lambda: panel.source.rowCount() == 2, timeout=SCAN_MS)  # listed at its end
    rerun = next(r for r in store.runs() if r["id"] != original["id"])
    assert rerun["tags"] == {"rerun_of": original["id"]}
    assert rerun["metrics"]["val_accuracy"] == original["metrics"]["val_accuracy"]
    assert not errors(window)


def test_open_model_makes_the_runs_model_the_active_one(qtbot, store, window, recorded):
    window.train_panel.set_data_folder(recorded["digits"])
    panel = open_runs(qtbot, window, rows=4)
    run = recorded["runs"][0]
    select(panel, run["id"])
    before = window.active_model
    click(qtbot, panel.open_button)
    qtbot.waitUntil(lambda: window.active_model is not before, timeout=SCAN_MS)
    assert window.active_model.bundle.path == Path(run["bundle"])
    assert "· 3 classes ·" in window.model_label.text()


def test_a_corrupt_record_is_reported_once_however_often_the_store_is_read(
    qtbot, store, window, recorded
):
    broken = store.root / "20250101-000000-abcdef"
    broken.mkdir()
    (broken / "run.json").write_text("{ not json", encoding="utf-8")
    (store.root / ".set-aside").write_text("")  # it cannot be set aside: read on each scan
    panel = open_runs(qtbot, window, rows=4)
    qtbot.waitUntil(lambda: bool(errors(window)), timeout=SCAN_MS)
    for _ in range(2):
        handle = panel.refresh()
        qtbot.waitUntil(lambda handle=handle: handle.done.is_set(), timeout=SCAN_MS)
        qtbot.waitUntil(lambda: not window.runner.active, timeout=SCAN_MS)
    reported = [e for e in errors(window) if "20250101-000000-abcdef is unreadable" in e]
    assert len(reported) == 1 and "left in place" in reported[0]
    assert panel.source.rowCount() == 4


def test_the_tracking_uri_set_in_the_runs_tab_sends_the_train_tabs_runs_to_mlflow(
    qtbot, make_window, tmp_path, monkeypatch
):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("CNN_DESKTOP_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data, uri = write_digits(tmp_path / "digits"), f"sqlite:///{tmp_path / 'mlflow.db'}"
    window = make_window()
    panel = open_runs(qtbot, window, rows=0)
    qtbot.keyClicks(panel.tracking_edit, uri)
    qtbot.keyClick(panel.tracking_edit, Qt.Key.Key_Return)
    assert window.settings.tracking_uri == uri

    train = window.train_panel
    train.set_data_folder(data)
    qtbot.waitUntil(lambda: train.report is not None, timeout=SCAN_MS)
    train.mode_combo.setCurrentIndex(train.mode_combo.findData("head"))
    train.epochs_spin.setValue(2)
    assert train.start() is not None
    qtbot.waitUntil(lambda: train.handle is None, timeout=TRAIN_MS)
    [record] = RunStore(tmp_path / "runs").runs()
    assert record["tracking"]["uri"] == uri and record["tracking"]["error"] is None
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("cnn-desktop").experiment_id])
    assert run.data.tags["cnn_desktop.run_id"] == record["id"]
    assert not errors(window)
