"""Faults seen from the real window: CUDA failing, a cache that cannot be written and a
training that runs out of memory each put a notice in the notification area; closing the
window during a real training run or a batch stops the worker cleanly and leaves nothing
half-written (and the process exits without a Qt thread warning)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QMessageBox

from cnn_desktop.core.inference.devices import onnx_provider_status
from cnn_desktop.core.models import pretrained
from cnn_desktop.core.models.bundle import load_bundle
from cnn_desktop.core.training import network as network_training
from cnn_desktop.core.training import network_export
from cnn_desktop.core.training.placement import checkpoint_path
from cnn_desktop.gui import window_lifetime
from cnn_desktop.gui.main_window import MainWindow
from tests.datasets import write_digits_dataset
from tests.fault_injection import CUDA_ERROR, OutOfMemoryAbove, break_cuda
from tests.gui.conftest import LOAD_TIMEOUT_MS, errors, first_result_arrived
from tests.processes import run_python

TRAIN_MS = 120_000
NOTICE = f"CUDA (ONNX Runtime's CUDA provider) failed ({CUDA_ERROR}); running on the CPU"


def notices(window: MainWindow) -> list[str]:
    return [text for level, text in window.notifications.messages if level == "info"]


@pytest.fixture
def fresh_provider_probe() -> Iterator[None]:
    onnx_provider_status.cache_clear()
    yield
    onnx_provider_status.cache_clear()


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "digits"
    write_digits_dataset(folder, per_class=20, classes=range(3))
    return folder


def test_cuda_failing_is_shown_and_the_model_runs_on_the_cpu(
    qtbot, make_window, monkeypatch, fresh_provider_probe
) -> None:
    break_cuda(monkeypatch.setattr, probe_passes=True)

    window = make_window()

    qtbot.waitUntil(lambda: NOTICE in notices(window), timeout=LOAD_TIMEOUT_MS)
    assert window.notifications.isVisible()
    assert window.model_label.text().endswith("onnx on CPUExecutionProvider")
    assert not errors(window)


def test_a_cache_that_cannot_be_written_is_shown(
    qtbot, make_window, tmp_path: Path, monkeypatch, default_bundle
) -> None:
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("not a folder")
    temp = tmp_path / "tmp"
    stand_in = temp / f"cnn-desktop-{os.getuid()}" / "models"
    stand_in.mkdir(parents=True)
    stand_in.parent.chmod(0o700)
    shutil.copytree(default_bundle.path, stand_in / default_bundle.path.name)  # spares a build
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("CNN_DESKTOP_CACHE_DIR", str(blocked))
    assert pretrained.cached_bundle_path().parent == blocked / "models"

    window = make_window()

    expected = f"the cache folder {blocked / 'models'} cannot be written"
    qtbot.waitUntil(lambda: any(expected in text for text in notices(window)), timeout=5000)
    assert window.active_model.bundle.path.parent == stand_in
    assert blocked.read_text() == "not a folder"


def start_training(window: MainWindow, qtbot, data: Path, out: Path, epochs: int, batch: int):
    panel = window.train_panel
    panel.set_data_folder(data)
    qtbot.waitUntil(lambda: panel.report is not None, timeout=LOAD_TIMEOUT_MS)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("scratch"))
    panel.arch_combo.setCurrentIndex(panel.arch_combo.findData("lenet5"))
    panel.epochs_spin.setValue(epochs)
    panel.batch_spin.setValue(batch)
    panel.output_edit.setText(str(out))
    handle = panel.start()
    assert handle is not None
    return handle


def test_out_of_memory_in_training_is_shown_and_the_run_finishes(
    qtbot, window: MainWindow, digits: Path, tmp_path: Path, monkeypatch
) -> None:
    build = network_training._build
    faults: list[OutOfMemoryAbove] = []

    def build_with_fault(*args):
        model, spec = build(*args)
        faults.append(OutOfMemoryAbove(model, largest=4, cuda=True))
        return model, spec

    monkeypatch.setattr(network_training, "_build", build_with_fault)
    export = network_export.export_onnx  # the bundle's export, after training

    def export_without_fault(model, *args, **kwargs):
        faults[0].armed = False  # the fault stands for the GPU: the export runs on the CPU
        return export(model, *args, **kwargs)

    monkeypatch.setattr(network_export, "export_onnx", export_without_fault)

    start_training(window, qtbot, digits, tmp_path / "m.cnnmodel", epochs=2, batch=16)
    qtbot.waitUntil(lambda: window.train_panel.handle is None, timeout=TRAIN_MS)

    shown = notices(window)
    assert any(t.startswith("out of memory at batch size 16; continuing with 8") for t in shown)
    assert any(t.startswith("out of memory at batch size 8; continuing with 4") for t in shown)
    assert window.train_panel.result is not None and not errors(window)
    assert load_bundle(tmp_path / "m.cnnmodel").spec.num_classes == 3


def leftovers(folder: Path) -> list[str]:
    """Working folders and temporary files a save must not leave behind."""
    marks = ("checking", "write-test", ".tmp", "staging")
    return sorted(p.name for p in folder.iterdir() if any(m in p.name for m in marks))


def say_yes_to_quitting(monkeypatch) -> None:
    monkeypatch.setattr(
        window_lifetime.QMessageBox, "question", lambda *_a, **_k: QMessageBox.StandardButton.Yes
    )


def test_closing_the_window_during_real_training_saves_a_whole_model(
    qtbot, window: MainWindow, digits: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "models" / "run.cnnmodel"
    out.parent.mkdir()
    handle = start_training(window, qtbot, digits, out, epochs=500, batch=1)
    qtbot.waitUntil(
        lambda: window.train_panel.run_view.curves.epoch_points() >= 1, timeout=TRAIN_MS
    )
    say_yes_to_quitting(monkeypatch)

    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=TRAIN_MS)

    assert handle.done.is_set() and not window.runner.active
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    bundle = load_bundle(out)  # the cancelled run's best epoch, complete
    assert bundle.spec.class_names == ("0", "1", "2")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["export_check"]["passed"]
    assert leftovers(out.parent) == []
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [out.name, checkpoint_path(out).name]
    )


def test_closing_the_window_during_a_batch_stops_it(
    qtbot, window: MainWindow, big_batch: list[Path]
) -> None:
    window.add_inputs([big_batch[0].parent])
    qtbot.waitUntil(lambda: first_result_arrived(window), timeout=LOAD_TIMEOUT_MS)
    assert window.runner.active

    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=LOAD_TIMEOUT_MS)

    assert not window.runner.active
    assert not [t.name for t in threading.enumerate() if t.name.startswith("classify")]
    assert any(e.pending for e in window.results.entries()), "the batch was stopped, not run out"
    assert not errors(window)


CHILD_CLOSING_DURING_WORK = r"""
import sys
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from cnn_desktop.gui import window_lifetime
from cnn_desktop.gui.main_window import MainWindow
from cnn_desktop.gui.state import Settings

settings_file, data, images, out = sys.argv[1:5]
app = QApplication(sys.argv[:1])
window_lifetime.QMessageBox.question = lambda *a, **k: QMessageBox.StandardButton.Yes
window = MainWindow(Settings(QSettings(settings_file, QSettings.Format.IniFormat)))
window.show()
panel = window.train_panel


def poll():
    if window.active_model is not None and not window.results.entries():
        window.add_inputs([Path(images)])
    if panel.report is not None and panel.handle is None and not window.is_closing:
        panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("scratch"))
        panel.arch_combo.setCurrentIndex(panel.arch_combo.findData("lenet5"))
        panel.epochs_spin.setValue(500)
        panel.batch_spin.setValue(1)
        panel.output_edit.setText(out)
        panel.start()
    if panel.run_view.curves.epoch_points() >= 1 and not window.is_closing:
        window.close()  # training and the batch are both running


panel.set_data_folder(data)
timer = QTimer()
timer.timeout.connect(poll)
timer.start(20)
QTimer.singleShot(240_000, lambda: app.exit(3))  # a hang fails the test, not the suite
sys.exit(app.exec())
"""


def test_the_process_exits_cleanly_after_closing_during_work(
    tmp_path: Path, digits: Path, big_batch: list[Path]
) -> None:
    out = tmp_path / "run.cnnmodel"
    done = run_python(
        "-c",
        CHILD_CLOSING_DURING_WORK,
        tmp_path / "settings.ini",
        digits,
        big_batch[0].parent,
        out,
        env={"QT_QPA_PLATFORM": "offscreen"},
    )

    assert done.returncode == 0, done.stderr[-3000:]
    for sign in ("QThread", "Traceback", "Destroyed while", "Fatal", "Segmentation"):
        assert sign not in done.stderr, done.stderr[-3000:]
    assert load_bundle(out).spec.num_classes == 3
    assert leftovers(tmp_path) == []


def test_a_read_only_output_folder_is_an_error_before_any_work(
    qtbot, window: MainWindow, digits: Path, tmp_path: Path, monkeypatch
) -> None:
    """Root writes anywhere, so the refusal a read-only folder gives is injected where the
    run tries to create its files (the CLI test runs it for real as an unprivileged user)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    make_folder = tempfile.mkdtemp

    def mkdtemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == locked:
            raise PermissionError(13, "Permission denied", str(dir))
        return make_folder(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)  # the output check's write test
    events = []
    monkeypatch.setattr(window.train_panel, "_on_event", events.append)

    start_training(window, qtbot, digits, locked / "model.cnnmodel", epochs=1, batch=8)
    qtbot.waitUntil(lambda: window.train_panel.handle is None, timeout=LOAD_TIMEOUT_MS)

    assert errors(window) == [
        f"Training failed: cannot write the model to {locked}: Permission denied"
    ]
    assert events == [] and list(locked.iterdir()) == []  # not even the scan ran
