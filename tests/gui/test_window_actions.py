"""The window's menus, shortcuts, clipboard and settings, as a user drives them."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtGui import QAction, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox

from cnn_desktop.gui import commands
from cnn_desktop.gui.main_window import MainWindow
from tests.gui.conftest import (
    BIG_BATCH,
    CATS,
    CLASSIFY_TIMEOUT_MS,
    COFFEE,
    LOAD_TIMEOUT_MS,
    close_window,
    drop,
    entry_named,
    errors,
    first_result_arrived,
    one_batch_inference_s,
    pipeline_threads_alive,
    wait_all_classified,
)


def menu_actions(menu: QMenu, skip: QMenu, prefix: str = "") -> list[tuple[str, QAction]]:
    """(menu path, action) of every leaf entry under ``menu``, except inside ``skip``."""
    prefix = f"{prefix}{menu.title().replace('&', '')} → "
    found = []
    for action in menu.actions():
        submenu = action.menu()
        if action.isSeparator() or submenu is skip:
            continue
        if submenu is not None:
            found += menu_actions(submenu, skip, prefix)
        else:
            found.append((prefix + action.text().replace("&", ""), action))
    return found


def all_menu_actions(window: MainWindow) -> list[tuple[str, QAction]]:
    """Every entry of the menu bar (the Open Recent list, filled when shown, aside)."""
    found = []
    for top in window.menuBar().actions():
        found += menu_actions(top.menu(), skip=window.actions_.recent_menu)
    return found


def press(qtbot, window: MainWindow, shortcut: str) -> None:
    """Type a shortcut on the window as a user would."""
    combination = QKeySequence(shortcut)[0]
    qtbot.keyClick(window, combination.key(), combination.keyboardModifiers())


@pytest.fixture
def paste_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where pasted images are written (instead of the user's real cache)."""
    cache = tmp_path / "user-cache"
    monkeypatch.setattr(commands, "cache_dir", lambda: cache)
    return cache / "pasted"


def test_every_menu_command_has_its_own_shortcut(window: MainWindow):
    actions = all_menu_actions(window)
    commands = [(p, a) for p, a in actions if not a.isCheckable()]
    assert len(commands) >= 15
    missing = [path for path, action in commands if action.shortcut().isEmpty()]
    assert missing == [], f"menu entries without a shortcut: {missing}"
    shortcuts = [a.shortcut().toString() for _, a in actions if not a.shortcut().isEmpty()]
    assert len(shortcuts) == len(set(shortcuts)), f"ambiguous shortcuts: {sorted(shortcuts)}"
    paths = {path for path, _ in actions}
    assert {"Edit → Paste Image or Path", "Help → About cnn-desktop", "File → Quit"} <= paths
    assert "Model → Backend → PyTorch" in paths


def test_view_shortcuts_switch_pages_and_tabs(qtbot, window: MainWindow, photos):
    drop(window, [photos["chelsea"]])
    wait_all_classified(qtbot, window, 1)
    window.activateWindow()
    expected = {
        "Ctrl+2": (window.batch_panel, None),
        "Ctrl+1": (window.gallery, None),
        "Ctrl+4": (None, window.explain.features),
        "Ctrl+5": (None, window.explain.model_view),
        "Ctrl+3": (None, window.explain.prediction),
    }
    for shortcut, (left, right) in expected.items():
        press(qtbot, window, shortcut)
        if left is not None:
            assert left.isVisible(), shortcut
        if right is not None:
            assert window.explain.currentWidget() is right, shortcut

    press(qtbot, window, "Ctrl+Shift+Backspace")
    assert window.results.entries() == []
    assert window.pages.currentIndex() == 0, "back to the empty state"


def test_top_k_and_backend_persist(qtbot, make_window, photos):
    first = make_window()
    first.set_top_k(3)
    first.set_backend("torch")
    qtbot.waitUntil(
        lambda: first.active_model.classifier.backend == "torch", timeout=LOAD_TIMEOUT_MS
    )
    close_window(qtbot, first)

    second = make_window()  # the same settings file
    assert second.settings.top_k == 3
    assert second.actions_.backend["torch"].isChecked()
    assert second.active_model.classifier.backend == "torch"
    assert "torch on cpu" in second.model_label.text()
    drop(second, [photos["chelsea"]])
    wait_all_classified(qtbot, second, 1)
    bars = second.bars.bar_values()
    assert len(bars) == 3 and bars[0][0] in CATS
    assert len(second.results.entries()[0].predictions) == 3


def test_pasted_image_is_classified(qtbot, window: MainWindow, photos, paste_folder: Path):
    QGuiApplication.clipboard().setImage(QImage(str(photos["chelsea"])))
    window.activateWindow()
    press(qtbot, window, "Ctrl+V")  # from the empty state
    wait_all_classified(qtbot, window, 1)

    entry = window.results.entries()[0]
    assert entry.path.parent == paste_folder and entry.path.suffix == ".png"
    assert entry.error is None and entry.top1.label in CATS
    assert window.selected_entry() is entry
    assert not errors(window)


def test_pasted_paths_are_classified(qtbot, window: MainWindow, photos):
    QGuiApplication.clipboard().setText(f"{photos['coffee']}\n  {photos['chelsea']}  \n")
    window.paste()
    wait_all_classified(qtbot, window, 2)

    assert entry_named(window, "coffee.png").top1.label in COFFEE
    assert entry_named(window, "chelsea.png").top1.label in CATS
    assert not errors(window)


def test_two_images_pasted_quickly_are_both_kept(
    qtbot, window: MainWindow, photos, paste_folder: Path, monkeypatch: pytest.MonkeyPatch
):
    # Both pastes within the same second, as a quick user's: the clock shows the same time.
    frozen_clock = SimpleNamespace(
        strftime=lambda _format, *_time: "20250101-120000", monotonic_ns=time.monotonic_ns
    )
    monkeypatch.setattr(commands, "time", frozen_clock)
    for name in ("chelsea", "coffee"):
        QGuiApplication.clipboard().setImage(QImage(str(photos[name])))
        window.paste()
    qtbot.waitUntil(lambda: not window.runner.active, timeout=CLASSIFY_TIMEOUT_MS)
    labels = sorted(e.top1.label in CATS for e in window.results.entries() if e.top1)
    assert labels == [False, True], [e.path for e in window.results.entries()]
    assert len(list(paste_folder.glob("pasted-20250101-120000-*.png"))) == 2


def test_results_table_lists_every_image(qtbot, window: MainWindow, photos):
    drop(window, [photos["chelsea"], photos["coffee"], photos["rocket"]])
    wait_all_classified(qtbot, window, 3)

    window.show_page("table")
    table = window.batch_panel.table
    assert table.isVisible()
    model = table.model()
    assert model.rowCount() == 3
    cells = {
        " ".join(str(model.index(r, c).data()) for c in range(model.columnCount()))
        for r in range(3)
    }
    for name, labels in (("chelsea.png", CATS), ("coffee.png", COFFEE)):
        row = next(text for text in cells if name in text)
        assert any(label in row for label in labels), row
    qtbot.waitUntil(
        lambda: "3 classified" in window.batch_panel.summary.text(), timeout=CLASSIFY_TIMEOUT_MS
    )


def test_about_box_names_the_providers_and_torch(
    qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
):
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(
        QMessageBox, "about", staticmethod(lambda _parent, title, text: shown.append((title, text)))
    )
    window.activateWindow()
    press(qtbot, window, "F1")
    qtbot.waitUntil(lambda: bool(shown), timeout=LOAD_TIMEOUT_MS)

    title, text = shown[0]
    assert "cnn-desktop" in title
    assert "CPUExecutionProvider" in text
    assert "PyTorch" in text
    assert "EfficientNet-Lite0" in text, "the model in use"
    assert not errors(window)


def test_escape_cancels_a_batch(qtbot, window: MainWindow, big_batch):
    limit_s = max(1.0, 3 * one_batch_inference_s(window))  # see test_cancel_stops_the_batch…
    drop(window, [big_batch[0].parent])
    qtbot.waitUntil(lambda: first_result_arrived(window), timeout=CLASSIFY_TIMEOUT_MS)
    assert window.cancel_button.isVisible()

    window.activateWindow()
    started = time.monotonic()
    press(qtbot, window, "Esc")
    qtbot.waitUntil(lambda: not window.runner.active, timeout=round(limit_s * 1000))
    assert window.runner.wait_for_idle(1.0)
    assert time.monotonic() - started < limit_s
    assert not pipeline_threads_alive()
    assert not window.cancel_button.isVisible()
    classified = sum(not e.pending for e in window.results.entries())
    assert 0 < classified < BIG_BATCH
