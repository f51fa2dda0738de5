"""Child process of ``benchmarks/bench_ui.py``'s cold-start figures: opens a window and prints,
as one JSON line, the wall-clock times (``time.time()``) at which it reached each stage.

Modes:
    bare                    a bare PySide6 QMainWindow (imports PySide6 only)
    app SETTINGS_INI        cnn-desktop's MainWindow, as ``cnn_desktop.gui.app.run_app`` opens it
    predict SETTINGS_INI IMAGE
                            the same, with IMAGE passed at start; done at its first prediction

"Visible" is when the first paint of the shown window has been processed (the event loop has
run once after the window's first Paint event). The parent measures from the moment it
launches the process, so interpreter start-up and imports count.

Run: ``python -m benchmarks.bare_window MODE [ARGS]`` (with ``QT_QPA_PLATFORM`` set as wanted).
"""

from __future__ import annotations

import time

STARTED = time.time()  # the interpreter is up; nothing imported yet

import json  # noqa: E402 - the time above must come first
import os  # noqa: E402
import sys  # noqa: E402

from PySide6.QtCore import QEvent, QObject, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QMainWindow  # noqa: E402

HEAVY_MODULES = ("torch", "torchvision", "timm")
TIMEOUT_S = 120.0


class FirstPaint(QObject):
    """Calls ``then`` once the event loop has run after the watched window's first paint."""

    def __init__(self, then) -> None:
        super().__init__()
        self.then = then
        self.seen = False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not self.seen and event.type() == QEvent.Type.Paint:
            self.seen = True
            QTimer.singleShot(0, self.then)
        return False


def heavy_modules_loaded() -> dict[str, bool]:
    """Whether torch and friends were imported into this process."""
    return {name: name in sys.modules for name in HEAVY_MODULES}


def finish(record: dict) -> None:
    """Print the record and leave at once (worker threads may still be busy: not measured)."""
    print(json.dumps(record), flush=True)
    os._exit(0)


def main() -> None:
    mode = sys.argv[1]
    times = {"python_started": STARTED}
    record: dict = {"mode": mode, "times": times}
    if mode == "bare":
        app = QApplication(sys.argv[:1])
        times["imports_done"] = time.time()
        window = QMainWindow()
        window.setWindowTitle("bare")
        window.resize(1280, 800)
    else:
        from pathlib import Path

        from PySide6.QtCore import QSettings

        from cnn_desktop.gui.app import create_app

        app = create_app(sys.argv[:1])
        from cnn_desktop.gui.main_window import MainWindow
        from cnn_desktop.gui.state import Settings

        times["imports_done"] = time.time()
        settings = Settings(QSettings(sys.argv[2], QSettings.Format.IniFormat))
        window = MainWindow(settings)
    times["window_built"] = time.time()

    def visible() -> None:
        times["visible"] = time.time()
        record["modules_at_visible"] = heavy_modules_loaded()
        if mode != "predict":
            finish(record)

    painted = FirstPaint(visible)
    window.installEventFilter(painted)
    window.show()
    times["shown"] = time.time()
    if mode == "predict":
        window.add_inputs([Path(sys.argv[3])])
        poll = QTimer()
        poll.setInterval(2)

        def check() -> None:
            if "model_ready" not in times and window.active_model is not None:
                times["model_ready"] = time.time()
            entries = window.results.entries()
            if entries and not entries[0].pending:
                times["first_prediction"] = time.time()
                top = entries[0].top1
                record["prediction"] = top.label if top else None
                record["error"] = entries[0].error
                record["modules_at_first_prediction"] = heavy_modules_loaded()
                poll.stop()
                # Whatever the window starts after the first result (model summary for the
                # explanation tabs, ...) must not need torch either.
                window.runner.wait_for_idle(TIMEOUT_S)
                record["modules_after_idle"] = heavy_modules_loaded()
                finish(record)

        poll.timeout.connect(check)
        poll.start()
    QTimer.singleShot(int(TIMEOUT_S * 1000), lambda: finish({**record, "error": "timed out"}))
    app.exec()


if __name__ == "__main__":
    main()
