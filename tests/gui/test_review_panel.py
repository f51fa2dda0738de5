"""The Review view of the Train tab as a user drives it: review the data folder, see the moved
image on top with its real class, move it back with one click, undo, read the log."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTabWidget

from cnn_desktop.core.review import MOVES_LOG, read_log
from cnn_desktop.gui.review_panel import ReviewPanel
from cnn_desktop.gui.train_panel import TrainPanel
from tests.datasets import write_photo_dataset
from tests.gui.test_train_panel import panel, runner  # noqa: F401 - the Train tab's fixtures

REVIEW_MS = 120_000


@pytest.fixture
def data(tmp_path: Path, default_bundle) -> dict:
    root = tmp_path / "photos"
    written = write_photo_dataset(root, per_class=12)
    moved = root / "coffee" / "rocket_006.jpg"
    written["rocket"][6].rename(moved)
    return {"root": root, "moved": moved, "home": root / "rocket" / "rocket_006.jpg"}


@pytest.fixture
def review(qtbot, panel: TrainPanel, data) -> tuple[TrainPanel, ReviewPanel]:  # noqa: F811
    """The Train tab on the data folder, its Review tab shown and a review finished."""
    panel.show()
    with qtbot.waitSignal(panel.set_data_folder(data["root"]).finished, timeout=REVIEW_MS):
        pass
    view = panel.findChild(ReviewPanel)
    tabs = panel.findChild(QTabWidget)
    tabs.setCurrentWidget(view)
    assert tabs.tabText(tabs.currentIndex()) == "Review data"
    qtbot.mouseClick(view.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.report is not None and view.handle is None, timeout=REVIEW_MS)
    return panel, view


def test_the_moved_image_is_shown_first_with_its_real_class(qtbot, review, data) -> None:
    _panel, view = review
    first = view.shown[0]
    assert (first.path, first.kind, first.given, first.suggested) == (
        data["moved"],
        "label",
        "coffee",
        "rocket",
    )
    assert view.table.item(0, 0).text() == "rocket_006.jpg"
    assert [view.table.item(0, c).text() for c in (2, 3)] == ["coffee", "rocket"]

    def thumbnail_shown() -> bool:  # the photo, opaque, in place of the grey placeholder
        pixels = view.table.item(0, 0).icon().pixmap(64, 64).toImage()
        return pixels.pixelColor(32, 32).alpha() == 255

    qtbot.waitUntil(thumbnail_shown, timeout=REVIEW_MS)


def test_one_click_moves_the_file_and_undo_brings_it_back(qtbot, review, data) -> None:
    train_tab, view = review
    button = view.move_button_of(data["moved"])
    assert button is not None and button.text() == "Move to rocket"
    with qtbot.waitSignal(train_tab.runner.busy_changed, timeout=REVIEW_MS):  # the rescan
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert data["home"].is_file() and not data["moved"].exists()
    assert data["moved"] not in [f.path for f in view.shown]
    assert view.log.count() == 1 and "coffee/rocket_006.jpg → rocket/rocket_006.jpg" in (
        view.log.item(0).text()
    )
    qtbot.waitUntil(
        lambda: train_tab.report is not None and train_tab.handle is None, timeout=REVIEW_MS
    )
    assert train_tab.report.counts() == {"cat": 12, "coffee": 12, "rocket": 12}

    qtbot.mouseClick(view.undo_button, Qt.MouseButton.LeftButton)
    assert data["moved"].is_file() and not data["home"].exists()
    assert view.shown[0].path == data["moved"]
    assert [e["action"] for e in read_log(data["root"])] == ["move", "undo"]
    assert view.log.count() == 2
    assert (data["root"] / MOVES_LOG).is_file()


def test_another_class_can_be_chosen_for_the_selected_images(qtbot, review, data) -> None:
    _panel, view = review
    view.table.selectRow(0)
    view.target_combo.setCurrentText("cat")
    qtbot.mouseClick(view.move_button, Qt.MouseButton.LeftButton)
    assert (data["root"] / "cat" / "rocket_006.jpg").is_file()
    assert not data["moved"].exists()
