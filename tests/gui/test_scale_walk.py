"""A big folder dropped on the window: results appear while it is still being walked, and the
window keeps processing events meanwhile."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QTimer

from cnn_desktop.gui import jobs
from cnn_desktop.gui.main_window import MainWindow
from tests.gui.conftest import CLASSIFY_TIMEOUT_MS, drop
from tests.gui.waiting import settle

FILES = 3_000
PAUSE_AT = 200  # the walk waits here until results and timer ticks have come


def write_big_folder(root: Path) -> None:
    """FILES hard links to one small photo (cheap to make, each a real image)."""
    root.mkdir()
    first = root / "img_00000.png"
    Image.new("RGB", (40, 30), (90, 160, 220)).save(first)
    for i in range(1, FILES):
        os.link(first, root / f"img_{i:05d}.png")


def test_results_appear_and_the_window_ticks_while_a_big_folder_is_walked(
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch
):
    root = tmp_path / "big"
    write_big_folder(root)
    ticks = 0
    paused_at_tick: int | None = None
    classified = False
    go_on = threading.Event()
    walked: list[bool] = []  # whether the walk saw what it waited for, then that it ended

    def on_tick() -> None:  # runs on the UI thread only while it processes events
        nonlocal ticks
        ticks += 1
        if paused_at_tick is not None and ticks >= paused_at_tick + 3 and classified:
            go_on.set()

    def on_result(*_args) -> None:
        nonlocal classified
        classified = classified or any(not e.pending for e in window.results.entries())

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(on_tick)
    timer.start()
    window.results.dataChanged.connect(on_result)
    real_walk = jobs.walk_images

    def paced_walk(inputs):
        nonlocal paused_at_tick
        for index, entry in enumerate(real_walk(inputs)):
            if index == PAUSE_AT:
                paused_at_tick = ticks
                walked.append(go_on.wait(CLASSIFY_TIMEOUT_MS / 1000))
            yield entry
        walked.append(True)

    monkeypatch.setattr(jobs, "walk_images", paced_walk)
    try:
        drop(window, [root])
        qtbot.waitUntil(lambda: len(walked) == 2, timeout=2 * CLASSIFY_TIMEOUT_MS)
        assert walked[0], "no result arrived, or the window did not tick, during the walk"
        qtbot.waitUntil(lambda: len(window.results.entries()) == FILES, timeout=30_000)
    finally:
        window.cancel_classification()
        timer.stop()
    settle(qtbot, window)
    entries = window.results.entries()
    assert [e.path.name for e in entries] == sorted(p.name for p in root.iterdir())
    done = [e for e in entries if not e.pending]
    assert done and all(e.error is None and e.predictions for e in done)
    assert window.results.counts() == (FILES, len(done), 0)  # kept as results came, not recounted
    summary = f"{FILES} images · {len(done)} classified · {FILES - len(done)} pending"
    qtbot.waitUntil(lambda: summary in window.batch_panel.summary.text(), timeout=10_000)
