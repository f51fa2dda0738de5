"""The Train tab's class maps as a user meets them: once a run's model is evaluated, one tile per
class (its name, the images averaged, where the evidence peaks), computed in the background;
a damaged image is left out with one notice; a class's object at a known place is where its
map peaks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from cnn_desktop.core.explain.class_maps import DEFAULT_PER_CLASS
from cnn_desktop.core.models.bundle import load_bundle
from cnn_desktop.gui.class_maps_panel import ClassMapsPanel
from cnn_desktop.gui.runner import TaskRunner
from cnn_desktop.gui.train_panel import TrainPanel
from tests.datasets import write_digits_dataset
from tests.gui.conftest import isolated_settings
from tests.spot_model import GREY, SIDE, red_square_image, write_spot_model

SCAN_MS = 20_000
TRAIN_MS = 120_000
MAPS_MS = 60_000
PER_CLASS = 30
VAL_PER_CLASS = round(PER_CLASS * 0.2)


@pytest.fixture
def runner(qtbot):
    runner = TaskRunner()
    yield runner
    runner.shutdown(30)


@pytest.fixture
def panel(qtbot, runner, tmp_path: Path) -> TrainPanel:
    panel = TrainPanel(runner, isolated_settings(tmp_path / "settings.ini"))
    qtbot.addWidget(panel)
    panel.resize(1300, 900)
    panel.show()
    return panel


def train_in_panel(qtbot, panel: TrainPanel, data: Path, out: Path, mode: str, epochs: int):
    panel.set_data_folder(data)
    qtbot.waitUntil(lambda: panel.report is not None, timeout=SCAN_MS)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData(mode))
    if mode == "scratch":
        panel.arch_combo.setCurrentIndex(panel.arch_combo.findData("lenet5"))
    panel.epochs_spin.setValue(epochs)
    panel.output_edit.setText(str(out))
    qtbot.waitUntil(lambda: not panel.runner.active, timeout=SCAN_MS)  # the preview
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.handle is None, timeout=TRAIN_MS)
    assert panel.result is not None, panel.run_view.status()


def wait_for_maps(qtbot, maps: ClassMapsPanel) -> None:
    qtbot.waitUntil(lambda: maps.handle is None and maps.status.text() != "", timeout=MAPS_MS)


def tiles(maps: ClassMapsPanel) -> dict[str, tuple[int, tuple[str, ...]]]:
    return {t.class_map.name: (t.class_map.count, t.class_map.methods) for t in maps.strip.tiles}


def test_a_head_run_shows_a_tile_per_class_and_a_damaged_image_is_left_out_with_one_notice(
    qtbot, panel, tmp_path
):
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=PER_CLASS, classes=range(3))
    errors: list[str] = []
    panel.error.connect(errors.append)
    maps = panel.class_maps
    assert maps.isHidden()  # nothing to show before a run
    train_in_panel(qtbot, panel, data, tmp_path / "digits.cnnmodel", "head", 20)
    assert "Validation accuracy" in panel.results.headline.text()
    wait_for_maps(qtbot, maps)

    assert maps.isVisible()
    assert tiles(maps) == {name: (VAL_PER_CLASS, ("cam",)) for name in ("0", "1", "2")}
    first = maps.strip.tiles[0]
    assert first.caption.text().startswith(f"0 · {VAL_PER_CLASS} images\npeak ")
    assert f"over {VAL_PER_CLASS} validation images" in first.toolTip()
    assert maps.status.text() == f"3 classes, {3 * VAL_PER_CLASS} validation images"
    assert first.image_label.pixmap().width() > 0
    assert errors == []
    # The tiles are the maps of the validation images, nothing else.
    validation = {path for path, _ in maps.items}
    assert len(validation) == 3 * VAL_PER_CLASS
    assert all(maps.sources[index] == "val" for index in range(3))

    # One validation image of class 1 is damaged after training: computed again, it is left
    # out, the others are all averaged, and one notice names it.
    damaged = next(path for path, index in maps.items if index == 1)
    damaged.write_bytes(damaged.read_bytes()[:40])
    qtbot.mouseClick(maps.again_button, Qt.MouseButton.LeftButton)
    wait_for_maps(qtbot, maps)
    assert tiles(maps) == {
        "0": (VAL_PER_CLASS, ("cam",)),
        "1": (VAL_PER_CLASS - 1, ("cam",)),
        "2": (VAL_PER_CLASS, ("cam",)),
    }
    assert len(errors) == 1 and damaged.name in errors[0] and "left out" in errors[0]
    assert damaged.name in maps.strip.tiles[1].toolTip()
    panel.grab().save(str(tmp_path / "train_with_class_maps.png"))


def test_a_scratch_run_maps_its_classes_by_occlusion(qtbot, panel, tmp_path):
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=20, classes=range(3))
    train_in_panel(qtbot, panel, data, tmp_path / "lenet.cnnmodel", "scratch", 2)
    wait_for_maps(qtbot, panel.class_maps)
    # LeNet-5 ends in fully connected layers: no classic CAM, occlusion instead.
    assert tiles(panel.class_maps) == {name: (4, ("occlusion",)) for name in ("0", "1", "2")}
    assert panel.class_maps.status.text() == "3 classes, 12 validation images"


@pytest.fixture
def without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every import of torch, torchvision and timm fails for the test, as in the lite build."""
    for name in ("torch", "torchvision", "timm"):
        monkeypatch.setitem(sys.modules, name, None)


def write_squares(folder: Path, per_class: int = 20, side: int = 96) -> None:
    """Noisy grey pictures with a red square in the upper left (class ``red``) or a blue one
    in the lower right (class ``blue``), of varied sizes and places within those quarters."""
    rng = np.random.default_rng(0)
    for name, colour, quarter in (("red", (220, 30, 30), 0), ("blue", (30, 60, 220), 1)):
        (folder / name).mkdir(parents=True)
        for n in range(per_class):
            image = Image.fromarray(rng.integers(90, 170, (side, side, 3)).astype(np.uint8))
            size = int(rng.integers(20, 30))
            left, top = (12 + quarter * 40 + int(rng.integers(0, 8)) for _ in range(2))
            image.paste(colour, (left, top, left + size, top + size))
            image.save(folder / name / f"{name}_{n:02d}.png")


def test_a_head_trained_without_torch_looks_at_the_square_of_each_class(
    qtbot, panel, tmp_path, without_torch
):
    """The lite build: head training and its class maps (CAM on ONNX Runtime), no PyTorch."""
    write_squares(tmp_path / "squares")
    train_in_panel(qtbot, panel, tmp_path / "squares", tmp_path / "sq.cnnmodel", "head", 20)
    wait_for_maps(qtbot, panel.class_maps)
    by_name = {tile.class_map.name: tile.class_map for tile in panel.class_maps.strip.tiles}
    assert {name: m.count for name, m in by_name.items()} == {"red": 4, "blue": 4}
    height, width = by_name["red"].heatmap.shape
    x, y = by_name["red"].peak  # the red squares sit in the upper left quarter of the crop
    assert x < width // 2 and y < height // 2, by_name["red"].peak
    assert by_name["blue"].peak[0] >= width // 2, by_name["blue"].peak  # the blue ones right


@pytest.mark.parametrize(("pooled", "method"), [(True, "cam"), (False, "occlusion")])
def test_the_map_of_a_class_peaks_where_its_object_sits(qtbot, runner, tmp_path, pooled, method):
    bundle = load_bundle(write_spot_model(tmp_path, pooled=pooled))
    # Red squares in the upper left of the crop, in images of several sizes; plain grey ones.
    items = []
    for n, (size, box) in enumerate(
        [((64, 64), (4, 4, 24, 24)), ((128, 128), (10, 12, 50, 48)), ((96, 64), (20, 6, 40, 26))]
    ):
        red_square_image(size, box, tmp_path / f"red_{n}.png")
        items.append((tmp_path / f"red_{n}.png", 0))
    for n in range(2):
        Image.new("RGB", (64, 64 + 16 * n), GREY).save(tmp_path / f"plain_{n}.png")
        items.append((tmp_path / f"plain_{n}.png", 1))
    maps = ClassMapsPanel(runner, isolated_settings(tmp_path / "settings.ini"))
    qtbot.addWidget(maps)
    maps.show_maps(bundle, items, {0: "val", 1: "val"})
    wait_for_maps(qtbot, maps)
    red, plain = maps.strip.tiles
    assert (red.class_map.name, red.class_map.count, red.class_map.methods) == ("red", 3, (method,))
    x, y = red.class_map.peak
    assert x < SIDE // 2 and y < SIDE // 2, red.class_map.peak
    assert "peak upper left" in red.caption.text()
    assert f"of the {SIDE}×{SIDE} crop" in red.toolTip()
    assert (plain.class_map.name, plain.class_map.count) == ("plain", 2)


def test_cancel_stops_the_maps_and_compute_again_brings_them_back(qtbot, runner, tmp_path):
    bundle = load_bundle(write_spot_model(tmp_path, pooled=False))  # occlusion: 50 runs each
    items = []
    for n in range(DEFAULT_PER_CLASS):
        red_square_image((64, 64), (4, 4, 24, 24), tmp_path / f"red_{n}.png")
        items += [(tmp_path / f"red_{n}.png", 0), (tmp_path / f"red_{n}.png", 1)]
    maps = ClassMapsPanel(runner, isolated_settings(tmp_path / "settings.ini"))
    qtbot.addWidget(maps)
    maps.show_maps(bundle, items + items)  # twice the cap: every other image is taken
    assert maps.cancel_button.isEnabled() and not maps.again_button.isEnabled()
    qtbot.mouseClick(maps.cancel_button, Qt.MouseButton.LeftButton)
    wait_for_maps(qtbot, maps)
    assert maps.status.text() == "Cancelled" and len(maps.strip.tiles) < 2
    assert maps.again_button.isEnabled()
    qtbot.mouseClick(maps.again_button, Qt.MouseButton.LeftButton)
    wait_for_maps(qtbot, maps)
    assert tiles(maps) == {"red": (DEFAULT_PER_CLASS, ("occlusion",))} | {
        "plain": (DEFAULT_PER_CLASS, ("occlusion",))
    }
    # A new run starts: the old model's maps go, and there is nothing to compute again.
    maps.follow(runner.submit("Training", lambda _context: None))
    assert maps.strip.tiles == [] and not maps.again_button.isEnabled()
    assert "when the run is evaluated" in maps.status.text()
