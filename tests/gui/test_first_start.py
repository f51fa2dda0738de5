"""The very first start: no model cache yet, so the window builds the built-in model's bundle
(README: "The first start builds the built-in model's ONNX bundle once … later starts reuse
it"). The other start-up tests share a pre-built cache and never see this. Run in a fresh
process on an empty ``CNN_DESKTOP_CACHE_DIR``."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from cnn_desktop.core.models.bundle import load_bundle
from tests.processes import run_python

CATS = {"tabby", "tiger cat", "Egyptian cat"}

CHILD = r"""
import json, sys, time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from cnn_desktop.gui.main_window import MainWindow
from cnn_desktop.gui.state import Settings

app = QApplication(sys.argv[:1])
window = MainWindow(Settings(QSettings(sys.argv[1], QSettings.Format.IniFormat)))
window.show()
window.add_inputs([Path(sys.argv[2])])  # given at start, before the model exists
status_texts = []


def wait(condition, seconds=240.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        app.processEvents()
        text = window.model_label.text()
        if not status_texts or status_texts[-1] != text:
            status_texts.append(text)
        time.sleep(0.005)
    return condition()


entries = window.results.entries
report = {"pending_at_start": [e.path.name for e in entries() if e.pending]}
report["model_loaded"] = wait(lambda: window.active_model is not None)
report["classified"] = wait(lambda: bool(entries()) and not entries()[0].pending)
entry = entries()[0] if entries() else None
report["label"] = entry.top1.label if entry is not None and entry.top1 else None
report["error"] = entry.error if entry is not None else None
report["idle"] = wait(lambda: not window.runner.active)
report["model_path"] = str(window.active_model.bundle.path) if window.active_model else None
report["status_texts"] = status_texts
report["errors"] = [t for level, t in window.notifications.messages if level == "error"]
window.close()
print(json.dumps(report), flush=True)
"""


def test_first_start_on_an_empty_cache_builds_the_model_and_classifies(tmp_path: Path) -> None:
    from skimage import data

    photo = tmp_path / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(photo, quality=92)
    cache = tmp_path / "fresh-cache"  # does not exist yet, as on a new machine
    env = {"QT_QPA_PLATFORM": "offscreen", "CNN_DESKTOP_CACHE_DIR": str(cache)}
    done = run_python("-c", CHILD, tmp_path / "settings.ini", photo, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["pending_at_start"] == ["chelsea.jpg"], report
    assert report["model_loaded"] and report["classified"] and report["idle"], report
    assert report["errors"] == [] and report["error"] is None, report
    assert report["label"] in CATS, report
    assert any("first run only" in text for text in report["status_texts"]), report
    assert "EfficientNet-Lite0" in report["status_texts"][-1], report
    # The bundle was built into the cache the window was told to use, and it loads.
    model_path = Path(report["model_path"])
    assert model_path.parent == cache / "models", report
    assert load_bundle(model_path).spec.num_classes == 1000
