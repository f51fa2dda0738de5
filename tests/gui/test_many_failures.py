"""A dropped folder of thousands of broken files: one summary in the notification bar, the
per-file reasons in the results, and the window's event loop running all along.

Each error notice used to restyle the bar (~51 ms of the UI thread): 5,000 broken files froze
the window for minutes. What is checked here is the cause, not a duration: how often the bar
is restyled and rewritten.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QTimer

from cnn_desktop.gui.batch_panel import ERROR
from cnn_desktop.gui.error_reporting import (
    FAILURE_REFRESH_MS,
    MAX_FAILURE_LINES,
    NAMED_UP_TO,
    FailedFiles,
)
from cnn_desktop.gui.main_window import MainWindow
from cnn_desktop.gui.widgets.notifications import NotificationArea
from tests.gui.conftest import drop, errors, wait_all_classified

EMPTY, TEXT = 1_500, 500


def write_broken_folder(root: Path) -> None:
    """EMPTY zero-byte JPEGs and TEXT text files named .png."""
    root.mkdir()
    for i in range(EMPTY):
        (root / f"empty_{i:04d}.jpg").touch()
    for i in range(TEXT):
        (root / f"notes_{i:04d}.png").write_text("not a picture", encoding="utf-8")


def test_thousands_of_broken_files_get_one_summary(
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch
):
    root = tmp_path / "broken"
    write_broken_folder(root)
    total = EMPTY + TEXT
    bar = window.notifications
    restyles: list[str] = []
    set_style_sheet = bar.setStyleSheet

    def counting_set_style_sheet(sheet: str) -> None:
        restyles.append(sheet)
        set_style_sheet(sheet)

    monkeypatch.setattr(bar, "setStyleSheet", counting_set_style_sheet)
    updates = 0

    def count_update() -> None:
        nonlocal updates
        updates += 1

    bar.changed.connect(count_update)
    ticks_while_running = 0

    def on_tick() -> None:
        nonlocal ticks_while_running
        ticks_while_running += bool(window.runner.active)

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(on_tick)
    timer.start()
    started = time.monotonic()
    try:
        drop(window, [root])
        wait_all_classified(qtbot, window, total)
    finally:
        timer.stop()
    elapsed_s = time.monotonic() - started

    summary = (
        f"{total} files could not be classified: {EMPTY} file is empty, {TEXT} not an image file"
    )
    assert errors(window) == [summary], errors(window)[:5]
    assert bar.isVisible() and summary in bar.banner_text()
    history = bar.history()
    assert summary in history[0]
    assert len(history) == 1 + MAX_FAILURE_LINES + 1, len(history)
    assert history[-1].strip() == (
        f"… and {total - MAX_FAILURE_LINES} more (each file's error is in the results)"
    )
    assert all(": file is empty" in line or ": not an image file" in line for line in history[1:-1])

    entries = window.results.entries()
    assert len(entries) == total
    assert all(e.error and not e.predictions for e in entries)
    table = window.batch_panel.table_model
    assert table.rowCount() == total
    shown_errors = [table.data(table.index(row, ERROR)) for row in range(total)]
    assert all(shown_errors), "every file's own error is in the results table"

    assert len(restyles) <= 1, "the bar is restyled only when its severity changes"
    # The first few failures are named at once, then the summary is rewritten at most once per
    # refresh interval, and once at the end: never once per file.
    allowed = NAMED_UP_TO + 2 + elapsed_s * 1000 / FAILURE_REFRESH_MS
    assert updates <= allowed, f"{updates} bar updates for {total} failed files"
    assert ticks_while_running >= 1, "the window's timers ran during the batch"


def test_a_slow_batch_updates_its_summary_in_place(qtbot):
    bar = NotificationArea()
    qtbot.addWidget(bar)
    failures = FailedFiles(bar)
    for name in ("a.png", "b.png", "c.png"):
        failures.add(name, "not an image file (or a format cnn-desktop does not read)")
    assert bar.messages == [
        (
            "error",
            "3 files could not be classified: a.png (not an image file), "
            "b.png (not an image file), c.png (not an image file)",
        )
    ], "the first few are named at once"

    failures.add("d.jpg", "image is truncated or corrupt (TIFFReadDirectory: bad tag)")
    for i in range(4):
        failures.add(f"big{i}.png", f"image is {i}×9 pixels, over the limit")
    assert "3 files" in bar.banner_text(), "later failures wait for the refresh"
    qtbot.waitUntil(lambda: "8 files" in bar.banner_text(), timeout=5 * FAILURE_REFRESH_MS)
    assert bar.messages == [
        (
            "error",
            "8 files could not be classified: 3 not an image file, "
            "1 image is truncated or corrupt, 1 image is 0×9 pixels, over the limit, "
            "3 for other reasons",
        )
    ]
    bar.info("Exported 3 results")
    bar.dismiss()
    failures.add("late.png", "file is empty")
    failures.finish()
    assert not bar.isVisible(), "an update does not reopen a dismissed bar"
    assert bar.messages[0][1].startswith("9 files could not be classified")
    history = bar.history()
    assert "9 files could not be classified" in history[0]
    assert [line.strip() for line in history[1:10]] == [
        *(f"{n}.png: not an image file (or a format cnn-desktop does not read)" for n in "abc"),
        "d.jpg: image is truncated or corrupt (TIFFReadDirectory: bad tag)",
        *(f"big{i}.png: image is {i}×9 pixels, over the limit" for i in range(4)),
        "late.png: file is empty",
    ], "each file under its batch's summary, before what came later"
    assert "Exported 3 results" in history[10]


def test_one_failure_reads_as_before_and_other_notices_restyle_once(qtbot):
    bar = NotificationArea()
    qtbot.addWidget(bar)
    restyles: list[str] = []
    set_style_sheet = bar.setStyleSheet
    bar.setStyleSheet = lambda sheet: (restyles.append(sheet), set_style_sheet(sheet))
    failures = FailedFiles(bar)
    failures.add("/photos/gone.jpg", "file not found")
    failures.finish()
    assert bar.messages == [("error", "/photos/gone.jpg: file not found")]
    assert len(bar.history()) == 1, "one file: the summary is its line"
    for i in range(20):
        bar.error(f"sorting: {i}.png not sorted")
    bar.info("done")
    bar.info("done again")
    assert len(restyles) == 2, "error, then info: two restyles for 23 messages"
    assert "(21 errors in all)" in bar.banner_text()
