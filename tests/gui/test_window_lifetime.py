"""The window's start and end: a model loads while batches fill the background threads,
closing during training asks and never blocks, uncaught exceptions are shown, and old
pasted images and embeddings are pruned at start."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from cnn_desktop.gui import commands, window_lifetime
from cnn_desktop.gui.main_window import MainWindow
from cnn_desktop.gui.runner import TaskContext
from tests.gui.conftest import LOAD_TIMEOUT_MS, errors, isolated_settings

DAY_S = 24 * 3600


def fake_training(window: MainWindow, saved: threading.Event):
    """A training run as the Train tab starts one: it runs until cancelled, then takes until
    ``saved`` is set to save its best model."""

    running = threading.Event()

    def job(context: TaskContext) -> str:
        running.set()
        while not context.cancel.cancelled:
            time.sleep(0.01)
        assert saved.wait(60), "the best model was never saved"
        return "saved"

    panel = window.train_panel
    panel.handle = window.runner.submit("Training", job, key="train", on_finished=panel._finished)
    assert running.wait(30), "the training did not start"
    return panel.handle


def answer(monkeypatch, button: QMessageBox.StandardButton) -> list[str]:
    """Make the next questions answer ``button``; returns the questions asked."""
    asked: list[str] = []

    def question(_parent, title, text, *_args, **_kwargs):
        asked.append(f"{title}: {text}")
        return button

    monkeypatch.setattr(window_lifetime.QMessageBox, "question", question)
    return asked


def test_a_model_loads_while_background_jobs_take_every_thread(qtbot, window: MainWindow):
    release = threading.Event()
    previous = window.active_model
    for i in range(8):
        window.runner.submit(f"Batch {i}", lambda _c: release.wait(60))
    try:
        window.open_model(None)
        qtbot.waitUntil(lambda: window.active_model is not previous, timeout=LOAD_TIMEOUT_MS)
    finally:
        release.set()
    qtbot.waitUntil(lambda: not window.runner.active, timeout=LOAD_TIMEOUT_MS)


def test_closing_during_training_can_be_refused(qtbot, window: MainWindow, monkeypatch):
    saved = threading.Event()
    handle = fake_training(window, saved)
    asked = answer(monkeypatch, QMessageBox.StandardButton.No)

    assert not window.close()
    assert len(asked) == 1 and "being trained" in asked[0]
    assert window.isVisible() and not window.is_closing
    assert not handle.is_cancelled, "training goes on"
    saved.set()
    window.train_panel.cancel()
    qtbot.waitUntil(lambda: not window.runner.active, timeout=LOAD_TIMEOUT_MS)


def test_closing_during_training_stops_it_and_closes_without_blocking(
    qtbot, window: MainWindow, monkeypatch
):
    saved = threading.Event()
    handle = fake_training(window, saved)
    asked = answer(monkeypatch, QMessageBox.StandardButton.Yes)

    assert not window.close(), "the window closes only once the training has stopped"
    assert len(asked) == 1
    assert handle.is_cancelled
    assert window.isVisible() and "saving the best model" in window.model_label.text()
    ticks: list[int] = []
    timer = QTimer(window)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    qtbot.waitUntil(lambda: len(ticks) >= 3, timeout=5000)  # the event loop runs meanwhile
    assert window.isVisible() and not handle.done.is_set()
    window.close()  # a second request does not ask again
    assert len(asked) == 1

    saved.set()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=LOAD_TIMEOUT_MS)
    assert handle.done.is_set() and not window.runner.active


@pytest.mark.qt_no_exception_capture  # the window's own hook is what is tested
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_exception_in_a_slot_or_a_thread_is_shown(qtbot, make_window, monkeypatch):
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    window = make_window()

    def broken_slot() -> None:
        _ = 1 / 0

    QTimer.singleShot(0, broken_slot)
    qtbot.waitUntil(lambda: bool(errors(window)), timeout=5000)
    assert "ZeroDivisionError: division by zero" in errors(window)[-1]
    assert "broken_slot" in window.notifications.history()[-1], "the traceback is kept"

    def broken_thread() -> None:
        raise LookupError("no such layer")

    thread = threading.Thread(target=broken_thread, name="layer-worker")
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: len(errors(window)) == 2, timeout=5000)
    assert "in layer-worker: LookupError: no such layer" in errors(window)[-1]


def aged_file(path: Path, size: int, age_days: float) -> Path:
    """A file of ``size`` bytes last modified ``age_days`` ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = time.time() - age_days * DAY_S
    os.utime(path, (stamp, stamp))
    return path


def test_old_pasted_images_and_embeddings_are_pruned_at_start(
    qtbot, make_window, tmp_path: Path, monkeypatch
):
    cache = tmp_path / "user-cache"
    monkeypatch.setattr(commands, "cache_dir", lambda: cache)
    monkeypatch.setattr(window_lifetime, "cache_dir", lambda: cache)
    pasted = cache / "pasted"
    old = [aged_file(pasted / f"pasted-{age}.png", 1000, age) for age in (40, 90)]
    recent = aged_file(pasted / "pasted-1.png", 1000, 1)
    unrelated = aged_file(pasted / "notes.txt", 10, 400)  # not a pasted image
    shard = cache / "embeddings" / "model-key" / "ab"
    embeddings = [aged_file(shard / f"ab{age}.npy", 400_000, age) for age in (6, 5, 4, 3, 2, 1)]
    settings = isolated_settings(tmp_path / "settings.ini")
    settings.pasted_max_age_days = 30
    settings.embedding_cache_max_gb = 1_000_000 / 1024**3  # room for two of the six
    settings.qsettings.sync()

    window = make_window(tmp_path / "settings.ini")
    qtbot.waitUntil(lambda: not window.runner.active, timeout=LOAD_TIMEOUT_MS)

    assert [p.exists() for p in old] == [False, False], "pasted images older than 30 days"
    assert recent.exists() and unrelated.exists()
    assert [p.exists() for p in embeddings] == [False] * 4 + [True] * 2, "oldest go first"
    assert not errors(window)
