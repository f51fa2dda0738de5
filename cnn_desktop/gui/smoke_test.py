"""``cnn-desktop gui --smoke-test [IMAGE]``: the real window, driven through its main flows.

Used to check a packaged app on a machine without Python (``make package-test``): it opens
the main window (offscreen unless ``QT_QPA_PLATFORM`` says otherwise) on the built-in model or
``--model``, classifies ``IMAGE`` (the app's own icon when none is given) through the task
runner, computes the feature maps of the first convolution and the class-activation map of
the top class, prints one line per step and exits 0; any error shown by the window, or a step
that does not finish in time, prints ``cnn-desktop: error: smoke test: ...`` and exits 1.
Settings go to a temporary file, never the user's. The last line before the verdict is
``timings: {JSON}``: wall-clock times (``time.time()``) of the window's first paint, the model
loaded and the first prediction, read by ``benchmarks/bench_package.py``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

STEP_TIMEOUT_S = 120.0
POLL_MS = 20


class SmokeTestFailure(RuntimeError):
    """A step of the smoke test failed; the message says which and why."""


def run_smoke_test(paths: Sequence[str] = (), model: str | None = None) -> int:
    """Drive the window through classify → feature maps → CAM; returns the exit code."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings

    from cnn_desktop.gui.app import create_app
    from cnn_desktop.gui.main_window import MainWindow
    from cnn_desktop.gui.state import Settings

    started = time.monotonic()
    timings: dict[str, float] = {}
    app = create_app()
    with tempfile.TemporaryDirectory(prefix="cnn-desktop-smoke-") as folder:
        settings = Settings(
            QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat)
        )
        window = MainWindow(settings, model_path=model)
        first_paint = _first_paint_filter(timings)
        window.installEventFilter(first_paint)
        window.show()
        try:
            _drive(window, _image_to_classify(paths), started, timings)
        except SmokeTestFailure as exc:
            print(f"cnn-desktop: error: smoke test: {exc}", file=sys.stderr)
            return 1
        finally:
            window.close()
            app.processEvents()
    print(f"timings: {json.dumps(timings)}")
    print(f"smoke test passed in {time.monotonic() - started:.1f} s")
    return 0


def _image_to_classify(paths: Sequence[str]) -> Path:
    if paths:
        return Path(paths[0])
    icon = resources.files("cnn_desktop.resources").joinpath("icons", "cnn-desktop-256.png")
    return Path(str(icon))


def _drive(window, image: Path, started: float, timings: dict[str, float]) -> None:
    _step(window, "window painted", lambda: "window_painted" in timings)
    _step(window, "model loaded", lambda: window.active_model is not None)
    timings["model_loaded"] = time.time()
    print(f"model: {window.model_label.text()} ({time.monotonic() - started:.1f} s)")

    window.add_inputs([image])
    entries = window.results.entries

    def classified() -> bool:
        return bool(entries()) and not any(e.pending for e in entries())

    _step(window, f"{image.name} classified", classified)
    timings["first_prediction"] = time.time()
    entry = entries()[0]
    if entry.error is not None or not entry.predictions:
        raise SmokeTestFailure(f"{image.name} was not classified: {entry.error}")
    top = entry.predictions[0]
    print(f"classified: {image.name}: {top.label} ({top.confidence:.1%})")

    features = window.explain.features
    window.show_detail("features")
    _step(window, "feature-map layers listed", lambda: features.layer_box.count() > 0)
    first_layer = features.layer_box.itemText(0)
    features.layer_box.setCurrentText(first_layer)

    def features_shown() -> bool:
        return features.result is not None and features.result.layer == first_layer

    _step(window, f"feature maps of {first_layer}", features_shown)
    assert features.result is not None
    print(f"feature maps: {first_layer}: {len(features.result.maps)} channels")

    prediction = window.explain.prediction
    window.show_detail("prediction")
    prediction.explain_class(top.index)
    wanted = f"for “{top.label}”"
    _step(window, "class-activation map", lambda: wanted in prediction.cam_label.text())
    print(f"class-activation map: {prediction.cam_label.text()}")
    _step(window, "all tasks finished", lambda: not window.runner.active)


def _first_paint_filter(timings: dict[str, float]):
    """An event filter noting when the window's first paint has been processed."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    class FirstPaint(QObject):
        def eventFilter(self, _watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and "window_painted" not in timings:
                QTimer.singleShot(0, lambda: timings.setdefault("window_painted", time.time()))
            return False

    return FirstPaint()


def _step(window, what: str, done: Callable[[], bool]) -> None:
    """Run the event loop until ``done()`` (checked every POLL_MS) or an error is shown."""
    from PySide6.QtCore import QEventLoop, QTimer

    deadline = time.monotonic() + STEP_TIMEOUT_S
    loop = QEventLoop()
    outcome: list[str] = []

    def check() -> None:
        shown = [text for level, text in window.notifications.messages if level == "error"]
        if shown:
            outcome.append(f"{what}: the window showed an error: {shown[0]}")
        elif done():
            outcome.append("")
        elif time.monotonic() > deadline:
            outcome.append(f"{what}: not done after {STEP_TIMEOUT_S:.0f} s")
        if outcome:
            loop.quit()

    timer = QTimer()
    timer.setInterval(POLL_MS)
    timer.timeout.connect(check)
    timer.start()
    check()
    if not outcome:
        loop.exec()
    timer.stop()
    if outcome[0]:
        raise SmokeTestFailure(outcome[0])
