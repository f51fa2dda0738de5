"""Fixtures and helpers shared by the window tests: a real window on the built-in model,
isolated settings, dropping files on it as a file manager would, waiting for results."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent

from cnn_desktop.gui.main_window import MainWindow
from cnn_desktop.gui.state import Settings

CATS = {"tabby", "tiger cat", "Egyptian cat"}
COFFEE = {"espresso", "cup"}
LOAD_TIMEOUT_MS = 30_000
CLASSIFY_TIMEOUT_MS = 60_000
BIG_BATCH = 150


def isolated_settings(path: Path) -> Settings:
    """Settings kept in their own ini file (never the user's)."""
    return Settings(QSettings(str(path), QSettings.Format.IniFormat))


@pytest.fixture
def make_window(qtbot, tmp_path: Path, default_bundle) -> Callable[..., MainWindow]:
    """Opens shown main windows on ``tmp_path/settings.ini`` (or ``settings_file``), each
    waited for until its model is loaded; they are closed at the end of the test."""

    def make(settings_file: Path | None = None) -> MainWindow:
        win = MainWindow(isolated_settings(settings_file or tmp_path / "settings.ini"))
        # At the end of the test: every job stopped and delivered, then the window closed.
        qtbot.addWidget(win, before_close_func=stop_jobs)
        win.show()
        qtbot.waitUntil(lambda: win.active_model is not None, timeout=LOAD_TIMEOUT_MS)
        return win

    return make


def stop_jobs(window: MainWindow) -> None:
    """Stop every job of the window and deliver what they sent (blocking: tests only)."""
    assert window.runner.shutdown(timeout_s=60), "a job did not stop"


def close_window(qtbot, window: MainWindow) -> None:
    """Close the window as a user would, and wait until it has closed (after its jobs)."""
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=LOAD_TIMEOUT_MS)


@pytest.fixture
def window(make_window) -> MainWindow:
    """A shown main window with isolated settings and the built-in model loaded."""
    return make_window()


@pytest.fixture(scope="module")
def big_batch(photos, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """BIG_BATCH 800×600 JPEG photos (copies of four real ones)."""
    folder = tmp_path_factory.mktemp("big_batch")
    sources = []
    for name in ("chelsea", "coffee", "rocket", "astronaut"):
        source = folder / f"source_{name}.jpg"
        Image.open(photos[name]).convert("RGB").resize((800, 600)).save(source, quality=90)
        sources.append(source)
    paths = []
    for i in range(BIG_BATCH):
        path = folder / "images" / f"img_{i:03d}.jpg"
        path.parent.mkdir(exist_ok=True)
        shutil.copyfile(sources[i % len(sources)], path)
        paths.append(path)
    return paths


def drop(window: MainWindow, paths: list[Path]) -> QDropEvent:
    """Drop ``paths`` on the window as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    assert event.isAccepted()
    return event


def wait_all_classified(qtbot, window: MainWindow, count: int) -> None:
    """Wait until ``count`` entries are listed, none pending, and no job is left."""

    def done() -> bool:
        entries = window.results.entries()
        return (
            len(entries) == count
            and not any(e.pending for e in entries)
            and not window.runner.active
        )

    qtbot.waitUntil(done, timeout=CLASSIFY_TIMEOUT_MS)


def entry_named(window: MainWindow, name: str):
    """The one gallery entry whose file is called ``name``."""
    matches = [e for e in window.results.entries() if e.path.name == name]
    assert len(matches) == 1, [e.path for e in window.results.entries()]
    return matches[0]


def select_path(window: MainWindow, path: Path) -> None:
    """Click an image in the gallery (by its path)."""
    row = window.results.row_of(path)
    assert row is not None, path
    index = window.filter_model.mapFromSource(window.results.index(row))
    assert index.isValid(), f"{path} is filtered out of the gallery"
    window.gallery.setCurrentIndex(index)


def first_result_arrived(window: MainWindow) -> bool:
    return any(not e.pending for e in window.results.entries())


def errors(window: MainWindow) -> list[str]:
    """Every error the notification area has shown."""
    return [text for level, text in window.notifications.messages if level == "error"]


def one_batch_inference_s(window: MainWindow, size: int = 16) -> float:
    """Seconds this machine, as loaded right now, takes to run one batch of the model."""
    spec = window.active_model.bundle.spec
    batch = np.zeros((size, spec.channels, *spec.input_size), np.float32)
    started = time.monotonic()
    window.active_model.classifier.predict(batch)
    return time.monotonic() - started


def pipeline_threads_alive() -> list[str]:
    """Names of the classification pipeline's threads still running."""
    return [t.name for t in threading.enumerate() if t.name.startswith("classify")]
