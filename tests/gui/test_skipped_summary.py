"""A dropped folder's files that are not images get one summary line, not one error each."""

from __future__ import annotations

import shutil

from cnn_desktop.gui.main_window import MainWindow
from tests.gui.conftest import CATS, drop, entry_named, errors, wait_all_classified


def test_dropped_folder_summarises_skipped_files(qtbot, window: MainWindow, photos, tmp_path):
    folder = tmp_path / "mixed"
    (folder / "nested").mkdir(parents=True)
    shutil.copyfile(photos["chelsea"], folder / "nested" / "cat.png")
    for i in range(3):
        (folder / f"notes{i}.txt").write_text("not a picture")
    (folder / "drawing.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n")
    (folder / ".hidden.txt").write_text("left out silently")

    drop(window, [folder])
    wait_all_classified(qtbot, window, 1)

    assert entry_named(window, "cat.png").top1.label in CATS
    infos = [text for level, text in window.notifications.messages if level == "info"]
    assert "4 files skipped: 3 .txt, 1 .eps" in infos, infos
    assert not any(".txt" in text or ".eps" in text for text in errors(window)), errors(window)
