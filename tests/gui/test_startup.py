"""Starting the window and classifying a photo never imports torch (the GUI runs on ONNX
Runtime only, which keeps start-up fast). Checked in a fresh process: in the test process
torch is already imported by other tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
CATS = {"tabby", "tiger cat", "Egyptian cat"}

CHILD = r"""
import json, sys, time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from cnn_desktop.gui.main_window import MainWindow
from cnn_desktop.gui.state import Settings

HEAVY = ("torch", "torchvision", "timm")
app = QApplication(sys.argv[:1])
window = MainWindow(Settings(QSettings(sys.argv[1], QSettings.Format.IniFormat)))
window.show()


def wait(condition, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
    return condition()


report = {"model_loaded": wait(lambda: window.active_model is not None)}
report["loaded_after_model"] = [m for m in HEAVY if m in sys.modules]
window.add_inputs([Path(sys.argv[2])])
entries = window.results.entries
report["classified"] = wait(lambda: bool(entries()) and not entries()[0].pending)
entry = entries()[0] if entries() else None
report["label"] = entry.top1.label if entry is not None and entry.top1 else None
report["error"] = entry.error if entry is not None else None
report["idle"] = wait(lambda: not window.runner.active)  # model summary etc. included
report["loaded_at_end"] = [m for m in HEAVY if m in sys.modules]
window.close()
print(json.dumps(report), flush=True)
"""


def test_window_starts_and_classifies_without_importing_torch(tmp_path: Path, default_bundle):
    from skimage import data

    photo = tmp_path / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(photo, quality=92)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}  # the shared model cache is inherited
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "settings.ini"), str(photo)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["model_loaded"], report
    assert report["classified"], report
    assert report["error"] is None, report
    assert report["label"] in CATS, report
    assert report["idle"], report
    assert report["loaded_after_model"] == [], "loading the model imported torch & co."
    assert report["loaded_at_end"] == [], "classifying or explaining imported torch & co."
