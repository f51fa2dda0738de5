"""The window's commands that talk to the user: file dialogs, paste, top-K, TTA, About.

A mixin of :class:`cnn_desktop.gui.main_window.MainWindow`; it relies on the window's
``settings``, ``runner``, ``notifications``, ``results``, ``batch_panel``, ``active_model``,
``add_inputs``, ``open_model`` and ``reclassify``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from cnn_desktop.core.imaging import IMAGE_EXTENSIONS
from cnn_desktop.core.models import cache_dir

PASTED_PREFIX = "pasted-"


def pasted_folder() -> Path:
    """Where pasted image data is written (pruned at start, see ``Settings.pasted_max_mb``)."""
    return cache_dir() / "pasted"


class WindowCommands:
    """File dialogs, clipboard, top-K and About for the main window."""

    settings: Any
    runner: Any
    notifications: Any
    results: Any
    batch_panel: Any
    active_model: Any
    reclassify: Any
    actions_: Any

    def _remember_folder(self, folder: str) -> None:
        self.settings.last_folder = folder
        self.batch_panel.last_folder = folder

    def choose_images(self) -> None:
        patterns = " ".join(f"*{ext}" for ext in sorted(IMAGE_EXTENSIONS))
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open Images", self.settings.last_folder, f"Images ({patterns});;All files (*)"
        )
        if files:
            self._remember_folder(str(Path(files[0]).parent))
            self.add_inputs([Path(f) for f in files])

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open Folder", self.settings.last_folder)
        if folder:
            self._remember_folder(folder)
            self.add_inputs([Path(folder)])

    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open Model",
            self.settings.last_folder,
            "Models (*.onnx model.json);;All files (*)",
        )
        if path:
            chosen = Path(path)
            self.open_model(str(chosen.parent if chosen.name == "model.json" else chosen))

    def choose_top_k(self) -> None:
        k, ok = QInputDialog.getInt(
            self, "Top-K", "Classes shown per image:", self.settings.top_k, 1, 20
        )
        if ok:
            self.set_top_k(k)

    def set_top_k(self, k: int) -> None:
        """Show ``k`` classes per image: the running batch stops, and everything listed (or
        still being listed) is classified again."""
        self.settings.top_k = k
        self.reclassify()

    def set_tta(self, enabled: bool) -> None:
        """Turn test-time augmentation on or off; like a Top-K change, everything listed is
        classified again."""
        self.settings.tta = enabled
        self.actions_.tta.setChecked(enabled)
        self.reclassify()

    def paste(self) -> None:
        """Classify the clipboard: an image, image files, or paths as text."""
        mime = QGuiApplication.clipboard().mimeData()
        if mime.hasUrls():
            self.add_inputs([Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()])
        elif mime.hasImage():
            image = QGuiApplication.clipboard().image()
            folder = pasted_folder()
            folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            target = folder / f"{PASTED_PREFIX}{stamp}-{time.monotonic_ns() % 10**9:09d}.png"
            if image.isNull() or not image.save(str(target)):
                self.notifications.error("The clipboard image could not be read")
                return
            self.add_inputs([target])
        elif mime.hasText():
            paths = [Path(line.strip()) for line in mime.text().splitlines() if line.strip()]
            self.add_inputs(paths)
        else:
            self.notifications.info("The clipboard holds no image or path")

    def show_about(self) -> None:
        """Versions and devices (gathered in the background; torch import takes a moment)."""
        from cnn_desktop.core.inference import system_info

        self.runner.submit(
            "About",
            lambda _context: system_info(),
            interactive=True,
            on_result=self._show_about_dialog,
        )

    def _show_about_dialog(self, info: dict) -> None:
        from cnn_desktop.gui.about import about_html

        model = self.active_model.status_text() if self.active_model else "no model loaded"
        QMessageBox.about(self, "About cnn-desktop", about_html(info, model))
