"""Label review: planted label errors and a copy across classes come out on top with the right
class; near neighbours computed block by block; moving files between classes, undo, the log."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_desktop.core.review import (
    MOVES_LOG,
    MoveError,
    move_to_class,
    pending_moves,
    read_log,
    review_folder,
    undo_last_move,
)
from cnn_desktop.core.review.label_issues import find_label_issues
from cnn_desktop.core.review.similarity import neighbourhood, outlier_indices, unit_rows
from cnn_desktop.core.training import scan_folder
from tests.datasets import write_photo_dataset


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, default_bundle) -> dict:
    """Crops of three photos, 16 per class; two moved into a wrong class, one copied into
    another class, and one image of noise that looks like nothing else."""
    root = tmp_path_factory.mktemp("review") / "photos"
    written = write_photo_dataset(root, per_class=16)
    moved = {
        root / "coffee" / "cat_003.jpg": "cat",
        root / "cat" / "rocket_005.jpg": "rocket",
    }
    written["cat"][3].rename(root / "coffee" / "cat_003.jpg")
    written["rocket"][5].rename(root / "cat" / "rocket_005.jpg")
    copy = root / "rocket" / "coffee_007.jpg"
    shutil.copyfile(written["coffee"][7], copy)
    noise = root / "rocket" / "noise.png"
    pixels = np.random.default_rng(3).integers(0, 256, (96, 96, 3), np.uint8)
    Image.fromarray(pixels).save(noise)
    report = review_folder(root, device="cpu")
    return {"root": root, "moved": moved, "copy": copy, "noise": noise, "report": report}


def test_planted_errors_come_first_with_their_real_class(planted) -> None:
    findings = planted["report"].findings
    top = {finding.path: finding for finding in findings[:3]}
    assert set(top) == {*planted["moved"], planted["copy"]}, [f.to_dict() for f in findings[:6]]
    for path, real in planted["moved"].items():
        assert (top[path].kind, top[path].suggested) == ("label", real)
        assert top[path].given == path.parent.name
    duplicate = top[planted["copy"]]
    assert (duplicate.kind, duplicate.given, duplicate.suggested) == (
        "duplicate",
        "rocket",
        "coffee",
    )
    assert duplicate.other == planted["root"] / "coffee" / "coffee_007.jpg"
    assert duplicate.score == 1.0


def test_findings_are_sorted_by_score_and_carry_the_documented_keys(planted) -> None:
    findings = planted["report"].findings
    scores = [finding.score for finding in findings]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= score <= 1.0 for score in scores)
    for finding in findings:
        data = finding.to_dict()
        assert {"kind", "path", "given", "suggested", "score"} <= data.keys()
        assert ("other" in data) == (finding.kind == "duplicate")
    assert planted["report"].images == 16 * 3 + 1 - 1  # + the noise, - both copies of one


def test_an_image_like_no_other_is_an_outlier(planted) -> None:
    outliers = [f.path for f in planted["report"].findings if f.kind == "outlier"]
    assert outliers == [planted["noise"]]


def test_confident_learning_flags_confident_disagreement_only() -> None:
    labels = np.array([0] * 10 + [1] * 10)
    probabilities = np.tile([0.9, 0.1], (20, 1))
    probabilities[10:] = [0.1, 0.9]
    probabilities[3] = [0.02, 0.98]  # labelled 0, the held-out head is sure it is a 1
    probabilities[4] = [0.45, 0.55]  # labelled 0, a toss-up: below the 1s' mean confidence
    probabilities[15] = [0.85, 0.15]  # labelled 1, as sure of 0 as typical 0s are
    assert find_label_issues(labels, probabilities).tolist() == [3, 15]


def test_neighbours_block_by_block_equal_the_whole_matrix() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    x[17] = x[4] * 3.0  # the same direction: similarity 1
    x[31] = x[9] + 0.01
    whole = neighbourhood(x, 0.99, neighbours=4, block_rows=1000)
    blocks = neighbourhood(x, 0.99, neighbours=4, block_rows=7)
    assert [(i, j) for i, j, _ in blocks.pairs] == [(i, j) for i, j, _ in whole.pairs]
    assert sorted((i, j) for i, j, _ in whole.pairs) == [(4, 17), (9, 31)]
    np.testing.assert_array_equal(blocks.nearest, whole.nearest)
    unit = unit_rows(x)
    full = unit @ unit.T
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_allclose(whole.nearest_similarity, -np.sort(-full, axis=1)[:, :4], atol=1e-6)


def test_outliers_are_the_far_tail_only() -> None:
    similarity = np.full((40, 5), 0.8, np.float32) + np.linspace(0, 0.02, 40)[:, None]
    similarity[12] = 0.2
    far, distance = outlier_indices(similarity, 5.0)
    assert far.tolist() == [12]
    assert distance[0] == pytest.approx(0.8)


@pytest.fixture
def classes(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
    Image.new("RGB", (40, 40), "red").save(root / "cat" / "a.png")
    Image.new("RGB", (40, 40), "blue").save(root / "cat" / "b.png")
    Image.new("RGB", (40, 40), "green").save(root / "dog" / "a.png")
    return root


def test_a_move_never_overwrites_and_undo_brings_the_file_back(classes: Path) -> None:
    original = (classes / "cat" / "a.png").read_bytes()
    in_the_way = (classes / "dog" / "a.png").read_bytes()
    move = move_to_class(classes, classes / "cat" / "a.png", "dog")
    assert move.target == (classes / "dog" / "a (2).png").resolve()
    assert move.target.read_bytes() == original
    assert (classes / "dog" / "a.png").read_bytes() == in_the_way
    assert not (classes / "cat" / "a.png").exists()
    (classes / "cat" / "a.png").write_bytes(b"a new file took the old name")
    back = undo_last_move(classes)
    assert back is not None and back.target == (classes / "cat" / "a (2).png").resolve()
    assert back.target.read_bytes() == original
    assert (classes / "cat" / "a.png").read_bytes() == b"a new file took the old name"
    assert undo_last_move(classes) is None
    assert [e["action"] for e in read_log(classes)] == ["move", "undo"]
    assert read_log(classes)[0] | {"time": ""} == {
        "time": "",
        "action": "move",
        "source": os.path.join("cat", "a.png"),
        "target": os.path.join("dog", "a (2).png"),
        "from": "cat",
        "to": "dog",
    }


def test_undo_takes_the_latest_move_first_and_a_new_class_folder_is_made(classes: Path) -> None:
    first = move_to_class(classes, classes / "cat" / "a.png", "dog")
    second = move_to_class(classes, classes / "cat" / "b.png", "bird")
    assert second.target == (classes / "bird" / "b.png").resolve()
    assert [m.target for m in pending_moves(classes)] == [first.target, second.target]
    undo_last_move(classes)
    assert (classes / "cat" / "b.png").exists()
    assert [m.target for m in pending_moves(classes)] == [first.target]


def test_the_log_is_hidden_from_the_scan(classes: Path) -> None:
    move_to_class(classes, classes / "cat" / "a.png", "dog")
    report = scan_folder(classes, for_training=False)
    assert (classes / MOVES_LOG).is_file()
    assert report.counts() == {"cat": 1, "dog": 2}
    assert (classes / MOVES_LOG, "hidden file") in report.skipped
    assert json.loads((classes / MOVES_LOG).read_text().splitlines()[0])["to"] == "dog"


def test_moves_stay_inside_the_data_folder(classes: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (40, 40)).save(outside / "x.png")
    with pytest.raises(MoveError, match="outside the data folder"):
        move_to_class(classes, outside / "x.png", "dog")
    for bad in ("..", "../elsewhere", ".hidden", "a/b", ""):
        with pytest.raises(MoveError, match="not a class folder name"):
            move_to_class(classes, classes / "cat" / "a.png", bad)
    (classes / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(MoveError, match="outside the data folder"):
        move_to_class(classes, classes / "cat" / "a.png", "escape")
    (classes / "loose.png").write_bytes((classes / "cat" / "b.png").read_bytes())
    with pytest.raises(MoveError, match="not inside a class folder"):
        move_to_class(classes, classes / "loose.png", "dog")
    with pytest.raises(MoveError, match="already in class"):
        move_to_class(classes, classes / "cat" / "a.png", "cat")
    assert (classes / "cat" / "a.png").exists() and not (outside / "a.png").exists()
    assert read_log(classes) == []


def test_in_the_split_layout_a_file_moves_within_its_split(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
    Image.new("RGB", (40, 40)).save(root / "val" / "cat" / "x.png")
    move = move_to_class(root, root / "val" / "cat" / "x.png", "dog")
    assert move.target == (root / "val" / "dog" / "x.png").resolve()
