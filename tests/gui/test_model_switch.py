"""Switching models and backends in the window: nothing of an old model stays alive, and
nothing it computed lands on the new one."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import shutil
import threading
import weakref
from pathlib import Path

import pytest

from cnn_desktop.gui import jobs
from cnn_desktop.gui.main_window import MainWindow
from tests.gui.conftest import (
    BIG_BATCH,
    CATS,
    CLASSIFY_TIMEOUT_MS,
    COFFEE,
    LOAD_TIMEOUT_MS,
    drop,
    entry_named,
    errors,
    wait_all_classified,
)

SWITCHES = 20
MB = 1 << 20
# Measured on the 2-core CPU machine over the 18 switches after the first two: 35-125 MB
# (allocator and runtime caches, not objects: every old model object is checked dead), and
# about 1,450 MB when each switch kept its old sessions and model copies.
MAX_GROWTH = 300 * MB


def rss_bytes() -> int:
    """Resident memory of this process (from /proc/self/statm), after garbage collection and
    after the C allocator has handed back the memory it holds free."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def switch_and_settle(qtbot, window: MainWindow, backend: str) -> None:
    """Choose ``backend`` and wait until the new model runs and every job is done."""
    previous = window.active_model
    window.set_backend(backend)
    qtbot.waitUntil(
        lambda: (
            window.active_model is not previous
            and not window.runner.active
            and all(not e.pending for e in window.results.entries())
        ),
        timeout=LOAD_TIMEOUT_MS * 2,
    )


def model_parts(window: MainWindow) -> dict[str, object]:
    """The heavy objects one open model consists of: model, session(s), explainer."""
    model, explainer = window.active_model, window.explain.explainer
    parts: dict[str, object] = {"model": model, "classifier": model.classifier}
    parts["explainer"] = explainer
    for name in ("_onnx", "_torch", "_model"):
        part = getattr(explainer, name)
        if part is not None:
            parts[f"explainer{name}"] = part
    return parts


def test_twenty_model_switches_free_every_old_model(qtbot, window: MainWindow, photos):
    drop(window, [photos["chelsea"]])
    wait_all_classified(qtbot, window, 1)
    # The CAM on and the feature maps shown: every model builds its explanation parts too.
    window.explain.prediction.cam_toggle.setChecked(True)
    qtbot.waitUntil(lambda: not window.runner.active, timeout=LOAD_TIMEOUT_MS)
    dead: list[tuple[int, str, weakref.ref]] = []
    baseline = 0
    for switch in range(SWITCHES):
        window.show_detail("features" if switch % 3 else "prediction")
        switch_and_settle(qtbot, window, "torch" if switch % 2 == 0 else "onnx")
        parts = model_parts(window)
        assert window.explain.explainer.backend == window.active_model.classifier.backend
        dead += [(switch, name, weakref.ref(part)) for name, part in parts.items()]
        del parts
        if switch == 1:  # one model of each backend has been opened
            gc.collect()
            baseline = rss_bytes()

    current = model_parts(window)
    gc.collect()
    alive = [(switch, name) for switch, name, ref in dead if ref() is not None]
    alive = [(s, n) for s, n in alive if s != SWITCHES - 1]  # the active model's own parts
    assert alive == [], f"parts of old models still alive: {alive}"
    assert current["model"] is window.active_model
    growth = rss_bytes() - baseline
    assert growth < MAX_GROWTH, f"memory grew by {growth / MB:.0f} MB over {SWITCHES - 2} switches"
    assert not errors(window)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory):
    """A LeNet-5 trained on handwritten 0s and 1s (classes "0", "1"), and one image of a 1."""
    from cnn_desktop.core.training.config import TrainConfig
    from cnn_desktop.core.training.run import train
    from tests.datasets import write_digits_dataset

    folder = tmp_path_factory.mktemp("digits")
    written = write_digits_dataset(folder / "digits", per_class=10, classes=range(2))
    config = TrainConfig(mode="scratch", arch="lenet5", epochs=2)
    result = list(train(folder / "digits", folder / "digits-model", config))[-1].result
    one = folder / "one.png"
    shutil.copyfile(written["1"][0], one)
    return result, one


def block(method, entered: threading.Event, release: threading.Event):
    """``method`` made to wait for ``release`` (telling ``entered`` when it is called)."""

    def blocked(*args, **kwargs):
        entered.set()
        assert release.wait(60), "never released"
        return method(*args, **kwargs)

    return blocked


def titles(window: MainWindow) -> list[str]:
    return [handle.title for handle in window.runner.active]


def test_a_cam_of_the_old_model_is_never_shown_after_a_switch(qtbot, window: MainWindow, photos):
    drop(window, [photos["chelsea"]])
    wait_all_classified(qtbot, window, 1)
    prediction = window.explain.prediction
    old = window.explain.explainer
    entered, release = threading.Event(), threading.Event()
    old.cam = block(old.cam, entered, release)
    prediction.cam_toggle.setChecked(True)
    assert entered.wait(30), "the CAM was not asked for"
    window.show_detail("model")  # nothing asks for the new model's CAM: the old one runs on
    try:
        window.set_backend("torch")
        qtbot.waitUntil(
            lambda: (
                window.active_model.classifier.backend == "torch"
                and not window.results.entries()[0].pending
                and titles(window) == ["Class-activation map"]
            ),
            timeout=LOAD_TIMEOUT_MS,
        )
        old_cam = window.runner.active[0]
        assert old_cam.is_cancelled, "the old model's CAM job was not cancelled"
    finally:
        release.set()
    qtbot.waitUntil(lambda: not window.runner.active, timeout=LOAD_TIMEOUT_MS)

    assert "CAM for" not in prediction.cam_label.text(), prediction.cam_label.text()
    assert prediction.preview.image().width() == 451, "the old model's map was painted"
    window.show_detail("prediction")
    label = window.selected_entry().top1.label
    qtbot.waitUntil(lambda: "Grad-CAM for" in prediction.cam_label.text(), timeout=30_000)
    assert f"“{label}”" in prediction.cam_label.text()
    assert not errors(window)


def test_a_folder_being_listed_during_a_switch_is_classified_by_the_new_model(
    qtbot, window: MainWindow, photos, tmp_path: Path, monkeypatch
):
    folder = tmp_path / "album"
    folder.mkdir()
    shutil.copy(photos["chelsea"], folder / "cat.png")
    shutil.copy(photos["coffee"], folder / "cup.png")
    entered, release = threading.Event(), threading.Event()
    slow_first = iter([block(jobs.walk_images, entered, release)])
    real = jobs.walk_images
    monkeypatch.setattr(jobs, "walk_images", lambda paths: next(slow_first, real)(paths))
    drop(window, [folder])
    assert entered.wait(30), "the folder is not being listed"
    try:
        window.set_backend("torch")
        qtbot.waitUntil(
            lambda: (
                window.active_model.classifier.backend == "torch"
                and len(window.results.entries()) == 2
                and not any(e.pending for e in window.results.entries())
            ),
            timeout=LOAD_TIMEOUT_MS,
        )
        assert "Classify" in titles(window), "the first listing is still stuck"
    finally:
        release.set()
    qtbot.waitUntil(lambda: not window.runner.active, timeout=LOAD_TIMEOUT_MS)

    serial = window.active_model.serial
    assert {e.model_serial for e in window.results.entries()} == {serial}
    assert entry_named(window, "cat.png").top1.label in CATS
    assert entry_named(window, "cup.png").top1.label in COFFEE
    assert not errors(window)


def test_changing_top_k_stops_the_batch_and_keeps_the_thumbnails(
    qtbot, window: MainWindow, big_batch
):
    drop(window, [big_batch[0].parent])
    qtbot.waitUntil(
        lambda: sum(e.thumbnail is not None for e in window.results.entries()) >= 10,
        timeout=CLASSIFY_TIMEOUT_MS,
    )
    running = [handle for handle in window.runner.active if handle.title == "Classify"]
    assert running, "the batch ended before Top-K changed: make it bigger"
    had_thumbnail = {e.path for e in window.results.entries() if e.thumbnail is not None}
    lost: list[Path] = []

    def check(top_left, bottom_right, *_roles) -> None:
        for row in range(top_left.row(), bottom_right.row() + 1):
            entry = window.results.entry(row)
            if entry.path in had_thumbnail and entry.thumbnail is None:
                lost.append(entry.path)

    window.results.dataChanged.connect(check)
    window.set_top_k(3)
    assert all(handle.is_cancelled for handle in running), "the first batch runs on"
    wait_all_classified(qtbot, window, BIG_BATCH)

    assert lost == [], f"{len(lost)} thumbnails were cleared while classifying again"
    assert {len(e.predictions) for e in window.results.entries()} == {3}
    assert not errors(window)


def test_a_confusion_matrix_image_gets_its_class_only_from_the_trained_model(
    qtbot, window: MainWindow, digits_model
):
    result, one = digits_model
    window.train_panel.results.show_result(result)
    prediction = window.explain.prediction

    window.show_image_with_cam(str(one), 1)  # the built-in model is active, not the trained one
    qtbot.waitUntil(lambda: " for “" in prediction.cam_label.text(), timeout=CLASSIFY_TIMEOUT_MS)
    top = entry_named(window, "one.png").top1
    assert top.index != 1
    assert f"for “{top.label}”" in prediction.cam_label.text(), "not the active model's top class"
    notices = [text for level, text in window.notifications.messages if level == "info"]
    assert any("Use this model" in text for text in notices), notices

    window.open_model(str(result.bundle.path))  # as "Use this model" does
    qtbot.waitUntil(
        lambda: window.active_model.bundle.path == result.bundle.path and not window.runner.active,
        timeout=LOAD_TIMEOUT_MS,
    )
    window.show_image_with_cam(str(one), 1)
    qtbot.waitUntil(lambda: "for “1”" in prediction.cam_label.text(), timeout=CLASSIFY_TIMEOUT_MS)
    assert not errors(window)
