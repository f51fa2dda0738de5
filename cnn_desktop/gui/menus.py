"""The window's menus: every action has a menu entry and a keyboard shortcut."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu

from cnn_desktop.core.versions import NO_TORCH, torch_installed
from cnn_desktop.gui.export_dialog import open_export_dialog

if TYPE_CHECKING:
    from cnn_desktop.gui.main_window import MainWindow

BACKEND_TITLES = {"onnx": "&ONNX Runtime", "torch": "&PyTorch"}
TTA_TIP = (
    "Average each image's probabilities over 6 views (the image, its mirror, 4 corner crops): "
    "often a little more accurate, 6× the work"
)
DEVICE_TITLES = {"auto": "&Automatic (GPU when it works)", "cpu": "&CPU", "cuda": "CUDA &GPU"}


@dataclass
class WindowActions:
    """Actions other parts of the window enable, check or trigger."""

    backend: dict[str, QAction]
    device: dict[str, QAction]
    recent_menu: QMenu
    cancel: QAction
    tta: QAction


def _add(
    window: MainWindow,
    menu: QMenu,
    text: str,
    shortcut: str | QKeySequence.StandardKey | None,
    slot: Callable[[], object],
) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    action.triggered.connect(lambda _checked=False: slot())
    menu.addAction(action)
    return action


def build_menus(window: MainWindow) -> WindowActions:
    """Create the menu bar of ``window``."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    _add(window, file_menu, "&Open Images…", QKeySequence.StandardKey.Open, window.choose_images)
    _add(window, file_menu, "Open &Folder…", "Ctrl+Shift+O", window.choose_folder)
    file_menu.addSeparator()
    _add(window, file_menu, "&Export Model…", "Ctrl+Shift+S", lambda: open_export_dialog(window))
    for action in window.batch_actions():
        file_menu.addAction(action)
    file_menu.addSeparator()
    _add(window, file_menu, "&Quit", "Ctrl+Q", window.close)

    edit_menu = bar.addMenu("&Edit")
    _add(window, edit_menu, "&Paste Image or Path", QKeySequence.StandardKey.Paste, window.paste)
    _add(window, edit_menu, "&Clear Images", "Ctrl+Shift+Backspace", window.clear_images)
    cancel = _add(window, edit_menu, "C&ancel Classification", "Esc", window.cancel_classification)

    view_menu = bar.addMenu("&View")
    _add(window, view_menu, "&Number of Classes Shown (Top-K)…", "Ctrl+K", window.choose_top_k)
    tta = QAction("Test-Time &Augmentation (Average Flips and Crops)", window, checkable=True)
    tta.setShortcut(QKeySequence("Ctrl+Shift+T"))
    tta.setStatusTip(TTA_TIP)
    tta.setChecked(window.settings.tta)
    tta.triggered.connect(lambda checked: window.set_tta(checked))
    view_menu.addAction(tta)
    _add(window, view_menu, "&Gallery", "Ctrl+1", lambda: window.show_page("gallery"))
    _add(window, view_menu, "Results &Table", "Ctrl+2", lambda: window.show_page("table"))
    view_menu.addSeparator()
    _add(window, view_menu, "&Prediction", "Ctrl+3", lambda: window.show_detail("prediction"))
    _add(window, view_menu, "&Feature Maps", "Ctrl+4", lambda: window.show_detail("features"))
    _add(window, view_menu, "&Model Layers", "Ctrl+5", lambda: window.show_detail("model"))
    view_menu.addSeparator()
    _add(window, view_menu, "&Train a Model…", "Ctrl+T", window.show_training)
    _add(window, view_menu, "Training &Runs", "Ctrl+R", window.show_runs)

    model_menu = bar.addMenu("&Model")
    _add(window, model_menu, "&Open Model…", "Ctrl+M", window.choose_model)
    recent_menu = model_menu.addMenu("Open &Recent")
    recent_menu.aboutToShow.connect(lambda: _fill_recent(window, recent_menu))
    _add(window, model_menu, "Use &Built-in Model", "Ctrl+Shift+M", lambda: window.open_model(None))
    model_menu.addSeparator()
    backend = _exclusive(window, model_menu.addMenu("&Backend"), BACKEND_TITLES, window.set_backend)
    device = _exclusive(window, model_menu.addMenu("&Device"), DEVICE_TITLES, window.set_device)
    backend["onnx"].setShortcut(QKeySequence("Ctrl+Alt+O"))
    backend["torch"].setShortcut(QKeySequence("Ctrl+Alt+P"))
    if not torch_installed():  # the lite build: say why instead of failing when chosen
        backend["torch"].setEnabled(False)
        backend["torch"].setText("&PyTorch (not in this installation)")
        backend["torch"].setStatusTip(f"The PyTorch backend needs PyTorch: {NO_TORCH}")

    help_menu = bar.addMenu("&Help")
    _add(window, help_menu, "&About cnn-desktop", "F1", window.show_about)
    return WindowActions(
        backend=backend, device=device, recent_menu=recent_menu, cancel=cancel, tta=tta
    )


def _exclusive(
    window: MainWindow, menu: QMenu, titles: dict[str, str], choose: Callable[[str], None]
) -> dict[str, QAction]:
    group = QActionGroup(window)
    group.setExclusive(True)
    actions = {}
    for key, title in titles.items():
        action = QAction(title, window, checkable=True)
        action.triggered.connect(lambda _checked=False, key=key: choose(key))
        group.addAction(action)
        menu.addAction(action)
        actions[key] = action
    return actions


def _fill_recent(window: MainWindow, menu: QMenu) -> None:
    menu.clear()
    recent = window.settings.recent_models
    if not recent:
        menu.addAction("No recent models").setEnabled(False)
        return
    for index, path in enumerate(recent, 1):
        action = menu.addAction(f"&{index} {path}")
        action.triggered.connect(lambda _checked=False, path=path: window.open_model(path))
