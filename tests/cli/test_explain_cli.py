"""``cnn-desktop explain`` as a user runs it: a real subprocess on real image files.

Coordinates are checked with a hand-built model whose evidence is exactly a red square pasted
on grey (tests/spot_model.py), and with the built-in model on the cat photo.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli.test_without_torch import run_without_torch
from tests.processes import run_python
from tests.spot_model import SIDE, red_square_image, write_spot_model

IMAGE_KEYS = {"path", "label", "class_index", "confidence", "method", "peak", "heatmap", "overlay"}
CLASS_KEYS = {"class", "count", "method", "peak", "heatmap", "overlay"}
CATS = {"tabby", "tiger cat", "Egyptian cat"}


@pytest.fixture(scope="module", autouse=True)
def _model_cached(default_bundle) -> None:
    """The built-in model is in the shared test cache before any subprocess runs."""


def explain(*args: str | Path):
    return run_python("-m", "cnn_desktop", "explain", *args)


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def assert_one_error_line(done, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnn-desktop: error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def spots(tmp_path_factory) -> Path:
    return write_spot_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def spots_unpooled(tmp_path_factory) -> Path:
    return write_spot_model(tmp_path_factory.mktemp("model"), pooled=False, name="flat")


# size, red square (left, top, right, bottom): each inside the centre crop, none in its centre
SQUARES = {
    "wide.png": ((300, 200), (70, 120, 110, 160)),  # crop x 62.5..237.5: the margins unseen
    "tall.png": ((90, 160), (50, 60, 70, 80)),  # crop y 40.6..119.4
    "small.png": ((40, 40), (24, 4, 34, 14)),  # upscaled to the 64-pixel input
}


def test_each_image_gets_a_heatmap_and_an_overlay_at_its_own_size(tmp_path, spots):
    images = tmp_path / "images"
    for name, (size, box) in SQUARES.items():
        red_square_image(size, box, images / name)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    done = explain(images, "--model", spots, "--out", out, "--format", "json")
    assert done.returncode == 1, done.stderr  # the broken image fails, the others go on
    assert "Traceback" not in done.stderr
    found = {Path(r["path"]).name: r for r in records(done.stdout)}
    assert set(found) == {*SQUARES, "broken.png", "notes.txt"}
    assert set(found["broken.png"]) == {"path", "error"}
    assert found["notes.txt"]["skipped"] == "not an image type (.txt)"
    for name, (size, (left, top, right, bottom)) in SQUARES.items():
        record = found[name]
        assert set(record) == IMAGE_KEYS
        assert (record["label"], record["class_index"], record["method"]) == ("red", 0, "cam")
        x, y = record["peak"]
        assert left <= x < right and top <= y < bottom, (name, record["peak"])
        with Image.open(record["heatmap"]) as heatmap:
            assert heatmap.format == "PNG" and heatmap.mode == "L" and heatmap.size == size
            grey = np.asarray(heatmap)
        row, col = np.unravel_index(int(grey.argmax()), grey.shape)
        assert grey.max() == 255 and left <= col < right and top <= row < bottom
        with Image.open(record["overlay"]) as overlay:
            assert overlay.format == "JPEG" and overlay.mode == "RGB" and overlay.size == size
            coloured = np.asarray(overlay, np.int16)
        if name == "wide.png":  # the model saw x 62.5..237.5 of 300: the margins are 0
            assert not grey[:, :62].any() and not grey[:, 238:].any()
            assert np.abs(coloured[:, :48] - 64).max() <= 6  # the grey darkened, not coloured
    suffixes = (".heatmap.png", ".overlay.jpg")
    expected = [f"{Path(name).stem}{suffix}" for name in SQUARES for suffix in suffixes]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    assert "1 of 4 could not be explained" in done.stderr


def test_without_a_global_pool_auto_is_occlusion_and_cam_is_refused(tmp_path, spots_unpooled):
    size, box = SQUARES["wide.png"]
    image = red_square_image(size, box, tmp_path / "wide.png")
    assert image.size == size
    done = explain(
        tmp_path / "wide.png",
        "--model",
        spots_unpooled,
        "--out",
        tmp_path / "out",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    (record,) = records(done.stdout)
    assert record["method"] == "occlusion" and record["label"] == "red"
    x, y = record["peak"]  # a cell of the 7×7 occlusion grid: 25 pixels here
    assert box[0] - 13 <= x < box[2] + 13 and box[1] - 13 <= y < box[3] + 13
    refused = explain(
        tmp_path / "wide.png",
        "--model",
        spots_unpooled,
        "--method",
        "cam",
        "--out",
        tmp_path / "refused",
    )
    assert_one_error_line(refused, "no classic CAM", "occlusion")
    assert not (tmp_path / "refused").exists()


def test_output_names_never_overwrite_each_other_or_existing_files(tmp_path, spots):
    for folder, box in (("a", (5, 5, 20, 20)), ("b", (40, 40, 60, 60))):
        red_square_image((64, 64), box, tmp_path / folder / "red.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "red.heatmap.png").write_bytes(b"the user's own file")
    done = explain(
        tmp_path / "a", tmp_path / "b", "--model", spots, "--out", out, "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    first, second = records(done.stdout)
    assert Path(first["heatmap"]).name == "red-2.heatmap.png"
    assert Path(first["overlay"]).name == "red-2.overlay.jpg"
    assert Path(second["heatmap"]).name == "red-3.heatmap.png"
    assert first["peak"][0] < 20 and second["peak"][0] >= 40  # each file its own image's
    assert (out / "red.heatmap.png").read_bytes() == b"the user's own file"
    again = explain(tmp_path / "a", "--model", spots, "--out", out, "--format", "json")
    assert Path(records(again.stdout)[0]["heatmap"]).name == "red-4.heatmap.png"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_class_option_and_table_format(tmp_path, spots):
    image = tmp_path / "red.png"
    red_square_image((64, 64), (5, 5, 20, 20), image)
    done = explain(image, "--model", spots, "--class", "plain", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(image)
    assert "plain (" in done.stdout and "cam, strongest at x=" in done.stdout
    assert f"heatmap: {tmp_path / 'out' / 'red.heatmap.png'}" in done.stdout
    assert_one_error_line(
        explain(image, "--model", spots, "--class", "purple", "--out", tmp_path / "out"),
        "the model has no class 'purple' (its classes: red, plain)",
    )
    assert_one_error_line(
        explain(image, "--model", spots, "--per-class", "--out", tmp_path / "out"),
        "--per-class takes one folder",
    )
    (tmp_path / "file").write_text("")
    assert_one_error_line(
        explain(image, "--model", spots, "--out", tmp_path / "file"), "output folder"
    )


def test_per_class_averages_each_class_folder_on_the_crop(tmp_path, spots):
    data = tmp_path / "data"
    # Red squares in the upper left quarter of the crop, in images of different sizes.
    for n, (size, box) in enumerate(
        [
            ((64, 64), (4, 4, 24, 24)),
            ((128, 128), (10, 12, 50, 48)),
            ((96, 64), (20, 6, 40, 26)),
            ((64, 96), (8, 20, 26, 40)),
        ]
    ):
        red_square_image(size, box, data / "red" / f"red_{n}.png")
    for n in range(2):
        (data / "plain").mkdir(exist_ok=True)
        Image.new("RGB", (64, 64 + 16 * n), (128, 128, 128)).save(data / "plain" / f"{n}.png")
    (data / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = data / "out"  # inside the data folder: not taken for a class
    done = explain(data, "--model", spots, "--per-class", "--out", out, "--format", "json")
    assert done.returncode == 1, done.stderr  # the broken image
    lines = records(done.stdout)
    assert [Path(r["path"]).name for r in lines if "error" in r] == ["broken.jpg"]
    classes = {r["class"]: r for r in lines if "class" in r}
    assert set(classes) == {"plain", "red"}
    red = classes["red"]
    assert set(red) == CLASS_KEYS and red["count"] == 4 and red["method"] == "cam"
    assert red["peak"][0] < SIDE // 2 and red["peak"][1] < SIDE // 2
    assert Path(red["heatmap"]).name == "red.mean-heatmap.png"
    with Image.open(red["heatmap"]) as heatmap:
        assert heatmap.mode == "L" and heatmap.size == (SIDE, SIDE)
        grey = np.asarray(heatmap, np.float32)
    assert grey[: SIDE // 2, : SIDE // 2].mean() > 4 * grey[SIDE // 2 :, SIDE // 2 :].mean()
    with Image.open(red["overlay"]) as overlay:
        assert overlay.mode == "RGB" and overlay.size == (SIDE, SIDE)
    assert classes["plain"]["count"] == 2
    assert Path(classes["plain"]["heatmap"]).name == "plain.mean-heatmap.png"


def _cat_on_grey(photos, path: Path) -> tuple[int, int, int, int]:
    """The cat photo in the upper left of a 600×400 grey picture; the cat's box."""
    canvas = Image.new("RGB", (600, 400), (128, 128, 128))
    box = (130, 30, 300, 200)  # the upper left quarter of the crop (x 125..475, y 25..375)
    with Image.open(photos["chelsea"]) as cat:
        canvas.paste(cat.convert("RGB").resize((box[2] - box[0], box[3] - box[1])), box[:2])
    canvas.save(path)
    return box


def test_grad_cam_on_the_torch_backend_finds_the_cat(tmp_path, photos):
    image = tmp_path / "cat.png"
    left, top, right, bottom = _cat_on_grey(photos, image)
    done = explain(
        image,
        "--backend",
        "torch",
        "--device",
        "cpu",
        "--out",
        tmp_path / "out",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    (record,) = records(done.stdout)
    assert record["method"] == "grad-cam" and record["label"] in CATS
    x, y = record["peak"]
    assert left <= x < right and top <= y < bottom
    with Image.open(record["heatmap"]) as heatmap:
        assert heatmap.size == (600, 400)


def test_without_torch_cam_works_and_grad_cam_is_refused(tmp_path, photos):
    image = tmp_path / "cat.png"
    left, top, right, bottom = _cat_on_grey(photos, image)
    done = run_without_torch("explain", image, "--out", tmp_path / "out", "--format", "json")
    assert done.returncode == 0, done.stderr
    (record,) = records(done.stdout)
    assert record["method"] == "cam" and record["label"] in CATS
    assert left <= record["peak"][0] < right and top <= record["peak"][1] < bottom
    refused = run_without_torch("explain", image, "--method", "grad-cam", "--out", tmp_path / "x")
    assert_one_error_line(refused, "Grad-CAM needs PyTorch", "has no PyTorch")
    assert not (tmp_path / "x").exists()
