"""The batch panel as a user drives it: a table of results, CSV export, class folders."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from cnn_desktop.core.inference.predict import Prediction
from cnn_desktop.gui.batch_panel import CONFIDENCE, FILE, LABEL, BatchPanel
from cnn_desktop.gui.results_model import ResultsModel
from cnn_desktop.gui.runner import TaskRunner

TIMEOUT_MS = 15_000
COLOURS = {"red.png": "red", "green.png": "green", "blue.png": "blue", "bad.png": "white"}


def preds(*pairs: tuple[str, float]) -> tuple[Prediction, ...]:
    return tuple(Prediction(label, i, conf) for i, (label, conf) in enumerate(pairs))


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = {}
    for name, colour in {**COLOURS, "later.png": "black"}.items():
        Image.new("RGB", (32, 24), colour).save(folder / name)
        paths[name] = folder / name
    return paths


@pytest.fixture
def results(images: dict[str, Path]) -> ResultsModel:
    """Three classified images, one failure and one still pending."""
    model = ResultsModel()
    model.add_pending(list(images.values()))
    model.set_result(images["red.png"], preds(("tabby, tabby cat", 0.5), ("lynx", 0.2)), None, None)
    model.set_result(images["green.png"], preds(("espresso", 0.9)), None, None)
    model.set_result(images["blue.png"], preds(("tabby, tabby cat", 0.7)), None, None)
    model.set_result(images["bad.png"], (), "image is truncated or corrupt", None)
    return model


@pytest.fixture
def panel(qtbot, results: ResultsModel) -> BatchPanel:
    runner = TaskRunner()
    widget = BatchPanel(results, runner)
    qtbot.addWidget(widget)
    yield widget
    assert runner.shutdown(timeout_s=10)


def column(panel: BatchPanel, col: int) -> list[str]:
    model = panel.sorted_model
    return [model.index(row, col).data() for row in range(model.rowCount())]


def test_table_mirrors_results_and_sorts_by_confidence(qtbot, panel, results, images) -> None:
    assert column(panel, FILE) == ["red.png", "green.png", "blue.png", "bad.png", "later.png"]
    assert column(panel, CONFIDENCE)[:3] == ["50.0%", "90.0%", "70.0%"]
    assert column(panel, LABEL)[4] == "classifying…"
    assert panel.sorted_model.index(0, FILE).data(Qt.ItemDataRole.ToolTipRole) == str(
        images["red.png"]
    )
    panel.table.sortByColumn(CONFIDENCE, Qt.SortOrder.DescendingOrder)
    assert column(panel, FILE)[:3] == ["green.png", "blue.png", "red.png"]
    results.set_result(images["later.png"], preds(("missile", 0.8)), None, None)
    assert column(panel, FILE)[:3] == ["green.png", "later.png", "blue.png"]
    assert column(panel, LABEL)[1] == "missile"
    panel.table.sortByColumn(LABEL, Qt.SortOrder.AscendingOrder)
    labels = ["", "espresso", "missile", "tabby, tabby cat", "tabby, tabby cat"]
    assert column(panel, LABEL) == labels  # the failed image has no label
    results.clear()
    assert panel.sorted_model.rowCount() == 0


def test_summary_counts_and_actions_follow_results(qtbot, panel, results, images) -> None:
    assert "5 images · 3 classified · 1 failed · 1 pending" in panel.summary.text()
    assert panel.export_csv_action.isEnabled() and panel.sort_action.isEnabled()
    results.set_result(images["later.png"], preds(("missile", 0.8)), None, None)
    qtbot.waitUntil(lambda: "4 classified" in panel.summary.text(), timeout=TIMEOUT_MS)
    results.clear()
    qtbot.waitUntil(lambda: panel.summary.text() == "No images", timeout=TIMEOUT_MS)
    assert not panel.export_csv_action.isEnabled() and not panel.sort_action.isEnabled()


def test_export_csv_writes_finished_results(qtbot, panel, tmp_path, images) -> None:
    out = tmp_path / "export" / "results.csv"
    out.parent.mkdir()
    with qtbot.waitSignal(panel.message, timeout=TIMEOUT_MS) as said:
        assert panel.export_csv(out) is not None
    assert said.args[0].startswith(f"Exported 4 results to {out}")
    assert "1 still being classified" in said.args[0]
    with open(out, encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [Path(r["path"]).name for r in rows] == ["red.png", "green.png", "blue.png", "bad.png"]
    assert rows[0]["top1_label"] == "tabby, tabby cat"
    assert float(rows[1]["top1_confidence"]) == pytest.approx(0.9)
    assert rows[3]["error"] == "image is truncated or corrupt"
    assert panel.summary.text().endswith(said.args[0])


def test_export_failure_is_reported(qtbot, panel, tmp_path) -> None:
    with qtbot.waitSignal(panel.error, timeout=TIMEOUT_MS) as said:
        panel.export_csv(tmp_path / "no such folder" / "results.csv")
    assert said.args[0].startswith("Could not export")


def test_sort_copies_into_label_folders(qtbot, panel, tmp_path, images) -> None:
    out = tmp_path / "sorted"
    with qtbot.waitSignal(panel.message, timeout=TIMEOUT_MS) as said:
        assert panel.sort_into_folders(out) is not None
        assert not panel.sort_action.isEnabled()  # one sort at a time
    assert said.args[0] == (
        f"Copied 3 images into 2 folders in {out} (2 unclassified images left out)"
    )
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "espresso/green.png",
        "tabby, tabby cat/blue.png",
        "tabby, tabby cat/red.png",
    ]
    assert (out / "espresso" / "green.png").read_bytes() == images["green.png"].read_bytes()
    assert all(p.exists() for p in images.values())
    assert panel.sort_action.isEnabled() and not panel.progress.isVisible()
    with qtbot.waitSignal(panel.message, timeout=TIMEOUT_MS):
        panel.sort_into_folders(out)  # again: new names, nothing overwritten
    assert (out / "espresso" / "green (2).png").exists()


def test_sort_moves_and_reports_moved_and_vanished_files(qtbot, panel, tmp_path, images) -> None:
    images["red.png"].unlink()
    out = tmp_path / "sorted"
    errors: list[str] = []
    moves: list[object] = []
    panel.error.connect(errors.append)
    panel.files_moved.connect(moves.append)
    with qtbot.waitSignal(panel.message, timeout=TIMEOUT_MS) as said:
        panel.sort_into_folders(out, move=True)
    message = said.args[0]
    [moved] = moves
    assert moved == [
        (images["green.png"], out / "espresso" / "green.png"),
        (images["blue.png"], out / "tabby, tabby cat" / "blue.png"),
    ]
    assert (
        message
        == f"Moved 2 images into 2 folders in {out}; 1 skipped (2 unclassified images left out)"
    )
    assert not images["green.png"].exists() and (out / "espresso" / "green.png").exists()
    assert errors == [f"{images['red.png']}: not sorted, file not found (moved or deleted?)"]


def test_nothing_to_do_says_so(qtbot, tmp_path) -> None:
    runner = TaskRunner()
    panel = BatchPanel(ResultsModel(), runner)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.error, timeout=1000) as said:
        assert panel.sort_into_folders(tmp_path) is None
    assert "no classified images" in said.args[0]
    with qtbot.waitSignal(panel.error, timeout=1000):
        assert panel.export_csv(tmp_path / "x.csv") is None
    assert runner.active == []


def test_menu_actions_ask_then_copy_by_default(qtbot, panel, tmp_path, monkeypatch) -> None:
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    out = tmp_path / "chosen"
    out.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_a, **_k: str(out))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *_a, **_k: (str(out / "r"), ""))
    monkeypatch.setattr(QMessageBox, "exec", lambda _self: 0)  # the user presses Enter:
    monkeypatch.setattr(QMessageBox, "clickedButton", QMessageBox.defaultButton)
    with qtbot.waitSignal(panel.message, timeout=TIMEOUT_MS) as said:
        panel.sort_action.trigger()
    assert said.args[0].startswith("Copied 3 images into 2 folders")
    with qtbot.waitSignal(panel.message, timeout=TIMEOUT_MS):
        panel.export_csv_action.trigger()
    assert (out / "r.csv").exists() and panel.last_folder == str(out)
