"""Screenshots of the real window for the README, taken on a virtual X screen.

    python docs/make_screenshots.py --out docs/screenshots

Starts Xvfb (through ``xvfb-run -a`` when there is one, else ``Xvfb`` itself), runs the app
there on the xcb platform (real fonts and styles, not the offscreen test platform) with
isolated settings, drives it through a few flows and writes one PNG per flow:

- ``empty.png``          the window before any image is given
- ``main_window.png``    a gallery of scikit-image photos, the cat's class-activation map
- ``feature_maps.png``   the cat's feature maps of a middle layer, one channel selected
- ``model.png``          the model's layers and first-layer kernels
- ``results_table.png``  the results table
- ``train.png``          the Train tab after LeNet-5 learnt six scikit-learn digits from
                         scratch: curves, per-class figures, confusion matrix, a cell's images,
                         the class maps
- ``runs.png``           the Runs tab after a second run at another learning rate: both runs
                         selected, their curves overlaid and the config keys that differ

The built-in model's bundle comes from the user's cache (built there on first use). Exit code 0
when every flow worked, 1 when one failed, 2 when no virtual X screen can be started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

CHILD_FLAG = "CNN_DESKTOP_SCREENSHOTS_CHILD"
WINDOW_SIZE = (1400, 880)
SCREEN = "1600x1000x24"
WAIT_S = 180.0  # the first run builds the model bundle
TRAIN_WAIT_S = 120.0
TRAIN_DIGITS = range(6)  # scikit-learn digits 0-5, 40 of each, 28×28
TRAIN_PER_CLASS = 40
TRAIN_EPOCHS = 8
RUNS_LR_FACTOR = 5  # the second run of runs.png: LeNet-5 again at 5× the learning rate
FEATURE_LAYER = "blocks.2.0.conv_dw (Conv)"  # 144 channels of 28×28: eyes, fur, edges
PHOTOS = (
    "chelsea",
    "coffee",
    "astronaut",
    "rocket",
    "motorcycle_left",
    "horse",
    "camera",
    "coins",
    "hubble_deep_field",
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument(
        "--size",
        default=f"{WINDOW_SIZE[0]}x{WINDOW_SIZE[1]}",
        help="window size, WIDTHxHEIGHT (default %(default)s)",
    )
    parser.add_argument(
        "--display",
        action="store_true",
        help="use the X display in $DISPLAY instead of starting Xvfb",
    )
    return parser.parse_args(argv)


# ----- the parent: start a virtual X screen and run the flows there -------------------------
def run_under_xvfb(argv: list[str]) -> int:
    env = {**os.environ, CHILD_FLAG: "1", "QT_QPA_PLATFORM": "xcb"}
    command = [sys.executable, str(Path(__file__).resolve()), *argv]
    if shutil.which("xvfb-run"):
        return subprocess.call(["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN}", *command], env=env)
    if shutil.which("Xvfb"):
        read_fd, write_fd = os.pipe()
        server = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", SCREEN, "-nolisten", "tcp"],
            pass_fds=(write_fd,),
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        try:
            with os.fdopen(read_fd) as pipe:
                number = pipe.readline().strip()
            if not number:
                print("make_screenshots: Xvfb did not start", file=sys.stderr)
                return 2
            return subprocess.call(command, env={**env, "DISPLAY": f":{number}"})
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(
        "make_screenshots: neither xvfb-run nor Xvfb found "
        "(run `bash packaging/system-deps.sh screenshots`)",
        file=sys.stderr,
    )
    return 2


# ----- the child: the real app on the virtual screen ----------------------------------------
def write_photos(folder: Path) -> dict[str, Path]:
    """scikit-image's sample photos as JPEG files."""
    import numpy as np
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in PHOTOS:
        if name == "motorcycle_left":
            array = data.stereo_motorcycle()[0]
        elif name == "horse":
            array = np.where(data.horse(), 255, 40).astype(np.uint8)  # dark horse on white
        else:
            array = getattr(data, name)()
        path = folder / f"{name}.jpg"
        Image.fromarray(array).convert("RGB").save(path, quality=92)
        written[name] = path
    return written


def write_digits(folder: Path) -> None:
    """scikit-learn's handwritten digits as class folders (the tests' dataset writer)."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.datasets import write_digits_dataset

    write_digits_dataset(folder, per_class=TRAIN_PER_CLASS, classes=TRAIN_DIGITS, size=28)


class Flows:
    """The app, and one method per screenshot."""

    def __init__(self, out: Path, size: tuple[int, int], work: Path) -> None:
        from PySide6.QtCore import QSettings

        from cnn_desktop.gui.app import create_app

        self.app = create_app(["cnn-desktop"])
        from cnn_desktop.gui.main_window import MainWindow
        from cnn_desktop.gui.state import Settings

        self.out = out
        self.work = work
        self.photos = write_photos(work / "photos")
        os.environ["CNN_DESKTOP_RUNS_DIR"] = str(work / "runs")  # never the user's run store
        settings = Settings(QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat))
        self.window = MainWindow(settings)
        self.window.resize(*size)
        self.window.move(0, 0)
        self.window.show()
        self.size = size

    # ----- helpers ------------------------------------------------------------------------
    def wait_until(self, what: str, predicate: Callable[[], bool], timeout_s: float = WAIT_S):
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            # Not QTest.qWait: it keeps the GIL while it waits, which starves the worker
            # threads (importing torch on one took 50 s instead of 4, each epoch 10× longer).
            self.app.processEvents()
            time.sleep(0.02)

    def settle(self, ms: int = 400) -> None:
        from PySide6.QtTest import QTest

        QTest.qWait(ms)  # layouts, repaints, the preview decoded at full size

    def save(self, name: str) -> Path:
        self.settle()
        pixmap = self.window.grab()
        if pixmap.isNull() or (pixmap.width(), pixmap.height()) != self.size:
            raise RuntimeError(f"{name}: grabbed {pixmap.width()}×{pixmap.height()} pixels")
        path = self.out / name
        if not pixmap.save(str(path), "PNG"):
            raise RuntimeError(f"could not write {path}")
        return path

    def idle(self) -> bool:
        window = self.window
        entries = window.results.entries()
        return not window.runner.active and not any(e.pending for e in entries)

    def no_errors(self) -> None:
        errors = [t for level, t in self.window.notifications.messages if level == "error"]
        if errors:
            raise RuntimeError("the window reported errors: " + "; ".join(errors))

    # ----- flows --------------------------------------------------------------------------
    def empty(self) -> Path:
        window = self.window
        self.wait_until("the built-in model", lambda: window.active_model is not None)
        self.wait_until("the model summary", lambda: window.explain.model_view.table.rowCount())
        self.no_errors()
        return self.save("empty.png")

    def main_window(self) -> Path:
        window = self.window
        window.add_inputs([self.photos["chelsea"].parent])
        self.wait_until(
            "every photo classified",
            lambda: len(window.results.entries()) == len(PHOTOS) and self.idle(),
        )
        self._select(self.photos["chelsea"])
        window.show_page("gallery")
        window.show_detail("prediction")
        prediction = window.explain.prediction
        prediction.cam_toggle.setChecked(True)
        self.wait_until(
            "the class-activation map", lambda: prediction.cam_label.text().startswith("CAM for")
        )
        self.wait_until("the preview", self.idle)
        self.no_errors()
        return self.save("main_window.png")

    def feature_maps(self) -> Path:
        import numpy as np

        window = self.window
        view = window.explain.features
        window.show_detail("features")
        layers = [view.layer_box.itemText(i) for i in range(view.layer_box.count())]
        layer = FEATURE_LAYER if FEATURE_LAYER in layers else layers[len(layers) // 2]
        view.layer_box.setCurrentText(layer)
        view.sort_box.setCurrentIndex(1)  # strongest channels first
        self.wait_until(
            "the feature maps",
            lambda: (
                view.result is not None
                and view.result.layer == layer
                and view.sort_by != "index"
                and list(view.result.order) != sorted(view.result.order)
                and self.idle()
            ),
        )
        result = view.result
        _, height, width = result.maps.shape
        # Click the channel with the most contrast (the strongest ones are often saturated).
        cell = int(np.argmax([result.maps[c].std() for c in result.order]))
        row, column = divmod(cell, result.columns)
        view.grid.clicked.emit(
            column * (width + result.pad) + width // 2, row * (height + result.pad) + height // 2
        )
        if view.selected_channel != int(result.order[cell]):
            raise RuntimeError("clicking the grid did not select the channel")
        self.no_errors()
        return self.save("feature_maps.png")

    def model(self) -> Path:
        window = self.window
        window.show_detail("model")
        self.wait_until("the model summary", lambda: window.explain.model_view.table.rowCount())
        return self.save("model.png")

    def results_table(self) -> Path:
        window = self.window
        window.show_page("table")
        window.show_detail("prediction")
        table = window.batch_panel.table
        self.wait_until("the table", lambda: table.model().rowCount() == len(PHOTOS))
        self.wait_until("the summary", lambda: "classified" in window.batch_panel.summary.text())
        return self.save("results_table.png")

    def train(self) -> Path:
        from cnn_desktop.gui.widgets.confusion_matrix import cell_images

        window = self.window
        panel = window.train_panel
        data = self.work / "digits"
        write_digits(data)
        window.show_training()
        panel.set_data_folder(data)
        self.wait_until(
            "the data scan",
            lambda: (
                panel.report is not None and Path(panel.report.root).resolve() == data.resolve()
            ),
        )
        panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("scratch"))
        panel.arch_combo.setCurrentIndex(panel.arch_combo.findData("lenet5"))
        panel.epochs_spin.setValue(TRAIN_EPOCHS)
        # Let the augmentation preview (it seeds torch's global generator) finish first.
        self.wait_until("the augmentation preview", lambda: not window.runner.active)
        if panel.start() is None:
            raise RuntimeError("training did not start")
        self.wait_until("training", lambda: panel.handle is None, TRAIN_WAIT_S)
        if panel.result is None:
            raise RuntimeError(
                f"training ended without a result: {panel.run_view.status_label.text()}"
            )
        # "Use this model" makes the trained model the active one, which reclassifies the
        # gallery: let it finish.
        panel.results.use_button.click()
        bundle = str(panel.result.bundle.path)
        self.wait_until(
            "the trained model",
            lambda: (
                window.active_model is not None
                and str(window.active_model.bundle.path) == bundle
                and self.idle()
            ),
        )
        maps = panel.class_maps
        self.wait_until("the class maps", lambda: maps.handle is None and bool(maps.strip.tiles))
        results = panel.results
        mistakes = [
            (count, true, predicted)
            for true, row in enumerate(results.matrix.counts)
            for predicted, count in enumerate(row)
            if count
            and true != predicted
            and cell_images(results.evaluation, results.classes, true, predicted)
        ]
        if mistakes:  # the biggest mistake: its images, with thumbnails
            _, true, predicted = max(mistakes)
            results.matrix.table.cellClicked.emit(true, predicted)
            cells = results.cell_images
            self.wait_until("the cell's images", lambda: cells.list.count() > 0)
            self.wait_until(
                "the thumbnails",
                lambda: not any(h.key == "train-thumbnails" for h in window.runner.active),
            )
        window.show_training()
        self.no_errors()
        return self.save("train.png")

    def runs(self) -> Path:
        window = self.window
        panel = window.train_panel
        window.show_training()
        panel.lr_spin.setValue(panel.lr_spin.value() * RUNS_LR_FACTOR)
        self.wait_until("the augmentation preview", lambda: not window.runner.active)
        if panel.start() is None:
            raise RuntimeError("the second training did not start")
        self.wait_until("the second training", lambda: panel.handle is None, TRAIN_WAIT_S)
        window.show_runs()
        runs = window.runs_panel
        self.wait_until("the runs", lambda: runs.proxy.rowCount() == 2 and not window.runner.active)
        runs.table.selectAll()
        self.no_errors()
        return self.save("runs.png")

    def _select(self, path: Path) -> None:
        window = self.window
        row = window.results.row_of(path)
        if row is None:
            raise RuntimeError(f"{path.name} is not in the gallery")
        window.gallery.setCurrentIndex(window.filter_model.mapFromSource(window.results.index(row)))

    def close(self) -> None:
        self.window.close()


def run_flows(args: argparse.Namespace) -> int:
    width, height = (int(v) for v in args.size.lower().split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    with tempfile.TemporaryDirectory(prefix="demo-") as work:
        flows = Flows(args.out, (width, height), Path(work))
        print(f"platform: {flows.app.platformName()}, window {width}×{height}")
        steps = (flows.empty, flows.main_window, flows.feature_maps, flows.model)
        for step in (*steps, flows.results_table, flows.train, flows.runs):
            try:
                started = time.monotonic()
                path = step()
                print(f"wrote {path} ({time.monotonic() - started:.1f} s)")
            except Exception:
                failed.append(step.__name__)
                print(f"FAILED {step.__name__}:\n{traceback.format_exc()}", file=sys.stderr)
        flows.close()
    if failed:
        print(f"make_screenshots: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if os.environ.get(CHILD_FLAG) or args.display:
        if args.display:
            os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
        return run_flows(args)
    return run_under_xvfb(argv)


if __name__ == "__main__":
    sys.exit(main())
