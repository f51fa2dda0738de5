"""What the README promises of the window and nothing else checked: a model dropped on the
window becomes the active one, Open Recent opens a model again, the device can be switched
without restarting (the status bar says what is really in use), and ``cnn-desktop gui PATHS
--model M`` starts on model M with PATHS in the gallery."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

from cnn_desktop.core.models.bundle import ModelBundle
from cnn_desktop.gui import main_window as main_window_module
from cnn_desktop.gui.main_window import MainWindow
from tests.gui.conftest import (
    CATS,
    LOAD_TIMEOUT_MS,
    drop,
    errors,
    isolated_settings,
    wait_all_classified,
)

DIGITS = {"0", "1"}


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    """A small model of our own (LeNet-5 on the digits 0 and 1) to switch to."""
    from cnn_desktop.core.training.config import TrainConfig
    from cnn_desktop.core.training.run import train
    from tests.datasets import write_digits_dataset

    folder = tmp_path_factory.mktemp("digits-model")
    write_digits_dataset(folder / "digits", per_class=10, classes=range(2))
    config = TrainConfig(mode="scratch", arch="lenet5", epochs=2)
    last = list(train(folder / "digits", folder / "digits-model", config))[-1]
    assert last.kind == "done"
    return last.result.bundle


def wait_model(qtbot, window: MainWindow, path: Path | None) -> None:
    """Wait until the model at ``path`` (None: the built-in one) is active and idle."""

    def active() -> bool:
        model = window.active_model
        if model is None or window.runner.active:
            return False
        if path is None:
            return model.bundle.spec.num_classes == 1000
        return model.bundle.path == path

    qtbot.waitUntil(active, timeout=LOAD_TIMEOUT_MS)


def labels(window: MainWindow) -> set[str]:
    return {e.top1.label for e in window.results.entries() if e.top1 is not None}


def test_a_model_bundle_dropped_on_the_window_becomes_the_active_model(
    qtbot, window: MainWindow, photos, digits_bundle: ModelBundle
) -> None:
    drop(window, [photos["chelsea"]])
    wait_all_classified(qtbot, window, 1)
    assert labels(window) <= CATS

    drop(window, [digits_bundle.path])  # the .cnnmodel folder, as a file manager drags it
    wait_model(qtbot, window, digits_bundle.path)
    assert window.active_model.bundle.spec.class_names == ("0", "1")
    assert window.model_label.text().startswith("digits-model · 2 classes · onnx on ")
    assert [e.path for e in window.results.entries()] == [photos["chelsea"]], "not an image"
    wait_all_classified(qtbot, window, 1)
    assert labels(window) <= DIGITS, "the photo is classified again by the dropped model"
    assert window.settings.recent_models == [str(digits_bundle.path.resolve())]
    assert not errors(window)


def test_a_lone_onnx_file_dropped_on_the_window_becomes_the_active_model(
    qtbot, window: MainWindow, digits_bundle: ModelBundle
) -> None:
    onnx_file = digits_bundle.onnx_path  # self-describing: the spec is in its metadata
    drop(window, [onnx_file])
    wait_model(qtbot, window, onnx_file)
    assert window.active_model.bundle.spec.class_names == ("0", "1")
    assert not errors(window)


def test_open_recent_lists_opened_models_and_opens_the_one_chosen(
    qtbot, window: MainWindow, digits_bundle: ModelBundle
) -> None:
    recent_menu = window.actions_.recent_menu
    recent_menu.aboutToShow.emit()
    assert [a.text() for a in recent_menu.actions()] == ["No recent models"]
    assert not recent_menu.actions()[0].isEnabled()

    window.open_model(str(digits_bundle.path))
    wait_model(qtbot, window, digits_bundle.path)
    window.open_model(None)  # back to the built-in model
    wait_model(qtbot, window, None)

    recent_menu.aboutToShow.emit()  # what Qt does as the menu opens
    entries = recent_menu.actions()
    assert [a.text() for a in entries] == [f"&1 {digits_bundle.path.resolve()}"]
    entries[0].trigger()
    wait_model(qtbot, window, digits_bundle.path.resolve())
    assert "digits-model · 2 classes" in window.model_label.text()
    assert not errors(window)


def cuda_works() -> bool:
    from cnn_desktop.core.inference.devices import onnx_provider_status

    return onnx_provider_status("CUDAExecutionProvider").working


def test_device_switching_without_restarting_shows_what_is_really_used(
    qtbot, window: MainWindow, photos
) -> None:
    drop(window, [photos["chelsea"]])
    wait_all_classified(qtbot, window, 1)
    device_actions = window.actions_.device

    device_actions["cpu"].trigger()  # Model → Device → CPU
    qtbot.waitUntil(lambda: window.settings.device == "cpu", timeout=LOAD_TIMEOUT_MS)
    wait_model(qtbot, window, None)
    assert window.active_model.classifier.device == "CPUExecutionProvider"
    assert window.model_label.text().endswith("onnx on CPUExecutionProvider")
    wait_all_classified(qtbot, window, 1)
    assert labels(window) <= CATS

    before = window.active_model
    device_actions["cuda"].trigger()  # Model → Device → CUDA GPU
    if cuda_works():
        qtbot.waitUntil(lambda: window.active_model is not before, timeout=LOAD_TIMEOUT_MS)
        assert window.model_label.text().endswith("onnx on CUDAExecutionProvider")
        assert device_actions["cuda"].isChecked()
    else:
        # No GPU here: one clear message, and the CPU model goes on, as the window says.
        qtbot.waitUntil(lambda: bool(errors(window)), timeout=LOAD_TIMEOUT_MS)
        qtbot.waitUntil(lambda: not window.runner.active, timeout=LOAD_TIMEOUT_MS)
        assert len(errors(window)) == 1
        assert errors(window)[0].startswith("Could not open the model: CUDA was asked for but")
        assert window.active_model is before
        assert window.model_label.text().endswith("onnx on CPUExecutionProvider")
        assert device_actions["cpu"].isChecked(), "the menu shows the device really in use"
        assert window.settings.device == "cpu", "a device that failed is not remembered"

    window.actions_.backend["torch"].trigger()  # and the other backend, on the CPU too
    qtbot.waitUntil(
        lambda: window.active_model.classifier.backend == "torch", timeout=LOAD_TIMEOUT_MS
    )
    wait_model(qtbot, window, None)
    if not cuda_works():
        assert window.model_label.text().endswith("torch on cpu")
    wait_all_classified(qtbot, window, 1)
    assert labels(window) <= CATS


def windows_opened_by_exec(monkeypatch: pytest.MonkeyPatch) -> list[MainWindow]:
    """Make ``QApplication.exec`` return at once (the test runs the event loop itself).

    Returns:
        A list that receives the main windows opened before ``exec`` was called.
    """
    existing = set(QApplication.topLevelWidgets())  # closed windows of earlier tests stay
    opened: list[MainWindow] = []

    def exec_returns_at_once(_app: QApplication) -> int:
        opened.extend(
            w
            for w in QApplication.topLevelWidgets()
            if isinstance(w, MainWindow) and w not in existing
        )
        return 0

    monkeypatch.setattr(QApplication, "exec", exec_returns_at_once)
    return opened


def test_gui_command_opens_model_m_with_paths_in_the_gallery(
    qtbot, qapp, photos, digits_bundle: ModelBundle, tmp_path: Path, monkeypatch
) -> None:
    """``cnn-desktop gui PATHS --model M`` through the real entry point, in this process:
    the event loop is the test's own (``exec`` returns at once)."""
    from cnn_desktop.cli import main

    settings_file = tmp_path / "gui.ini"
    monkeypatch.setattr(main_window_module, "Settings", lambda: isolated_settings(settings_file))
    opened = windows_opened_by_exec(monkeypatch)
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "coffee.png").write_bytes(photos["coffee"].read_bytes())
    argv = ["gui", str(photos["chelsea"]), str(folder), "--model", str(digits_bundle.path)]
    assert main(argv) == 0
    assert len(opened) == 1
    window = opened[0]
    qtbot.addWidget(window)
    assert window.isVisible()
    wait_model(qtbot, window, digits_bundle.path)
    wait_all_classified(qtbot, window, 2)
    assert {e.path for e in window.results.entries()} == {photos["chelsea"], folder / "coffee.png"}
    assert labels(window) <= DIGITS, "classified by model M, not the built-in one"
    assert not errors(window)
    assert window.settings.qsettings.fileName() == str(settings_file)


def test_gui_script_accepts_the_same_arguments(
    qtbot, qapp, photos, digits_bundle: ModelBundle, tmp_path: Path, monkeypatch
) -> None:
    """The ``cnn-desktop-gui`` script (``cnn_desktop.gui.app:main``) takes PATHS and
    ``--model M`` as ``cnn-desktop gui`` does."""
    from cnn_desktop.gui import app

    monkeypatch.setattr(main_window_module, "Settings", lambda: isolated_settings(tmp_path / "i"))
    opened = windows_opened_by_exec(monkeypatch)
    script_argv = ["cnn-desktop-gui", str(photos["chelsea"]), "--model", str(digits_bundle.path)]
    monkeypatch.setattr(sys, "argv", script_argv)
    assert app.main() == 0
    assert len(opened) == 1
    window = opened[0]
    qtbot.addWidget(window)
    wait_model(qtbot, window, digits_bundle.path)
    wait_all_classified(qtbot, window, 1)
    assert [e.path for e in window.results.entries()] == [photos["chelsea"]]
    assert labels(window) <= DIGITS
