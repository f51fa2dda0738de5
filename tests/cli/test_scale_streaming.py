"""``cnn-desktop classify`` on a folder of 20,000 files streams: results are printed while the
folder is still being walked, not after the whole walk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.cli.test_cli import REPO_ROOT, _model_cached  # noqa: F401

FOLDERS, PER_FOLDER = 200, 100


def write_big_folder(root: Path) -> int:
    """One real photo first, then 20,000 empty ``.png`` files in 200 folders (cheap: each is
    an error result without a decode); returns how many files there are."""
    for f in range(FOLDERS):
        folder = root / f"a{f:03d}"
        folder.mkdir(parents=True)
        for i in range(PER_FOLDER):
            (folder / f"f{i:03d}.png").touch()
    Image.new("RGB", (48, 32), (200, 120, 40)).save(root / "a000" / "0-photo.png")
    return FOLDERS * PER_FOLDER + 1


def test_the_first_json_line_arrives_before_the_walk_lists_the_last_folder(tmp_path: Path):
    root = tmp_path / "big"
    count = write_big_folder(root)
    process = subprocess.Popen(
        [sys.executable, "-m", "cnn_desktop", "classify", str(root), "--format", "json"],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    assert process.stdout is not None
    try:
        first = json.loads(process.stdout.readline())
        # The process cannot run far ahead: a full pipe stops its printing, and a lazy walk
        # with it. A file added now to the last folder is found only if the walk has not
        # listed that folder yet.
        late = root / f"a{FOLDERS - 1:03d}" / "late.png"
        late.touch()
        rest = [json.loads(line) for line in process.stdout]
        stderr = process.communicate(timeout=300)[1]
    finally:
        process.kill()
        process.wait()
    assert first["path"] == str(root / "a000" / "0-photo.png")
    assert "predictions" in first, first
    records = {record["path"]: record for record in [first, *rest]}
    assert len(records) == len(rest) + 1 == count + 1, "a path is missing or came twice"
    assert records[str(late)] == {"path": str(late), "error": "file is empty"}
    assert records[str(root / "a199" / "f099.png")]["error"] == "file is empty"
    assert process.returncode == 1
    assert f"{count} of {count + 1} could not be classified" in stderr, stderr[-2000:]
    assert "Classifying" in stderr  # the progress line counts while the total is unknown
    assert "Traceback" not in stderr
