"""Start the desktop application."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from cnn_desktop import __version__

APP_ID = "io.github.cnn_desktop.CnnDesktop"
"""Reverse-DNS id: the .desktop file's and AppStream metainfo's name (resources/)."""


def create_app(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication (created once)."""
    app = QApplication.instance()
    if isinstance(app, QApplication):
        return app
    app = QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("cnn-desktop")
    app.setOrganizationName("cnn-desktop")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(APP_ID)  # Wayland finds the icon through the installed .desktop
    app.setWindowIcon(app_icon())
    return app


def app_icon() -> QIcon:
    """The app's icon in the sizes the package carries."""
    icon = QIcon()
    folder = resources.files("cnn_desktop.resources").joinpath("icons")
    for size in (32, 64, 256):
        icon.addFile(str(folder.joinpath(f"cnn-desktop-{size}.png")))
    return icon


def run_app(paths: Sequence[str] = (), model: str | None = None) -> int:
    """Open the main window, optionally classifying ``paths`` at once; returns the exit code."""
    app = create_app()
    from cnn_desktop.gui.main_window import MainWindow

    window = MainWindow(model_path=model)
    window.show()
    if paths:
        window.add_inputs([Path(p) for p in paths])
    return app.exec()


def main() -> int:
    """Entry point of the ``cnn-desktop-gui`` script: the arguments of ``cnn-desktop gui``
    (``PATHS… [--model M]``), parsed by the same parser."""
    from cnn_desktop.cli import main as cli_main

    return cli_main(["gui", *sys.argv[1:]])
