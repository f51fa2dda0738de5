"""Scanning a user's training folder, splitting it and weighting its classes."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_desktop.core.tasks import Cancelled, CancelToken
from cnn_desktop.core.training.dataset import DatasetError, ScanReport, scan_folder
from cnn_desktop.core.training.splits import balanced_sample_weights, class_weights, make_split
from tests.datasets import write_digits_dataset, write_junk, write_photo_dataset


def _squares(folder: Path, count: int, start: int = 0) -> list[Path]:
    """``count`` small distinct images in ``folder`` (for edge cases only)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(start, start + count):
        path = folder / f"img_{n:03d}.png"
        Image.new("RGB", (32, 32), (n * 7 % 256, n * 13 % 256, 90)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def digits_with_junk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Path, str]]:
    root = tmp_path_factory.mktemp("digits")
    write_digits_dataset(root, per_class=8, classes=range(4))
    return root, write_junk(root, "0")


def test_scan_counts_digits_and_skips_junk_with_reasons(digits_with_junk) -> None:
    root, junk = digits_with_junk
    report = scan_folder(root)
    assert report.layout == "folders"
    assert report.classes == ("0", "1", "2", "3")
    assert report.counts() == {"0": 8, "1": 8, "2": 8, "3": 8}
    assert report.total == 32 and list(report.items) == ["all"]
    assert dict(report.skipped) == junk
    assert len(report.skipped) == len(junk)  # each once: a hidden folder, not its files
    assert all(
        path.suffix == ".png" and ".thumbnails" not in str(path) for path, _ in report.items["all"]
    )
    labels = {path.parent.name: label for path, label in report.items["all"]}
    assert labels == {"0": 0, "1": 1, "2": 2, "3": 3}
    summary = report.summary()
    assert "4 classes, 32 images" in summary and "Skipped 8" in summary
    assert "2 unreadable" in summary and "1 not inside a class folder" in summary
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["counts"] == {"0": 8, "1": 8, "2": 8, "3": 8}
    assert len(as_json["splits"]["all"]) == 32 and len(as_json["skipped"]) == 8


def test_without_image_checks_bad_images_are_kept_for_later(digits_with_junk) -> None:
    root, _ = digits_with_junk
    report = scan_folder(root, check_images=False)
    kept = {path.name for path, _ in report.items["all"]}
    assert {"truncated.jpg", "empty.jpg"} <= kept
    assert report.counts()["0"] == 10


def test_progress_is_reported_and_cancel_stops_the_scan(tmp_path: Path) -> None:
    write_digits_dataset(tmp_path, per_class=15, classes=range(10))
    reports: list[tuple[float, str]] = []
    scan_folder(tmp_path, progress=lambda fraction, message: reports.append((fraction, message)))
    assert "Scanning 150/150 files" in [message for _, message in reports]
    assert reports[-1][0] == 1.0
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions)

    token = CancelToken()

    def cancel_after_first_chunk(fraction: float, message: str) -> None:
        if message.startswith("Scanning"):
            token.cancel()

    with pytest.raises(Cancelled):
        scan_folder(tmp_path, progress=cancel_after_first_chunk, cancel=token)


def test_images_nested_inside_a_class_folder_belong_to_that_class(tmp_path: Path) -> None:
    written = write_digits_dataset(tmp_path, per_class=6, classes=range(2))
    nested = tmp_path / "1" / "2023" / "summer"
    nested.mkdir(parents=True)
    moved = [shutil.move(path, nested / path.name) for path in written["1"][:3]]
    report = scan_folder(tmp_path)
    assert report.classes == ("0", "1")
    assert report.counts() == {"0": 6, "1": 6}
    assert {Path(path) for path in moved} <= {p for p, label in report.items["all"] if label == 1}


def test_split_layout_is_detected_and_used_as_given(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    written = write_digits_dataset(staging, per_class=12, classes=range(3))
    root = tmp_path / "data"
    for name, paths in written.items():
        for split, part in (
            ("train", paths[:8]),
            ("validation", paths[8:10]),
            ("test", paths[10:]),
        ):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for path in part:
                shutil.move(path, root / split / name / path.name)
    (root / "README.md").write_text("digits\n", encoding="utf-8")

    report = scan_folder(root)
    assert report.layout == "split"
    assert report.classes == ("0", "1", "2")
    assert report.split_counts() == {
        "train": {"0": 8, "1": 8, "2": 8},
        "val": {"0": 2, "1": 2, "2": 2},
        "test": {"0": 2, "1": 2, "2": 2},
    }
    folder_of = {"train": "train", "val": "validation", "test": "test"}
    for split, items in report.items.items():
        assert all(path.parent.parent.name == folder_of[split] for path, _ in items)
        assert all(report.classes[label] == path.parent.name for path, label in items)
    assert report.skipped == [(root / "README.md", "file ignored: not train, val or test")]
    assert "Splits used as given: train 24, val 6, test 6" in report.summary()

    split = make_split(report, val_fraction=0.5, seed=3)  # val_fraction is not used
    assert split.train == report.items["train"]
    assert split.val == report.items["val"]
    assert split.test == report.items["test"]


def test_split_layout_without_test_and_a_class_missing_from_val(tmp_path: Path) -> None:
    _squares(tmp_path / "train" / "cat", 3)
    _squares(tmp_path / "train" / "dog", 3, start=10)
    _squares(tmp_path / "val" / "cat", 2, start=20)
    report = scan_folder(tmp_path)
    assert report.layout == "split" and list(report.items) == ["train", "val"]
    assert "classes with no images in val: dog" in report.warnings
    assert make_split(report).test == []


def test_split_layout_class_without_training_images_is_refused(tmp_path: Path) -> None:
    _squares(tmp_path / "train" / "cat", 3)
    _squares(tmp_path / "val" / "cat", 2, start=10)
    _squares(tmp_path / "val" / "dog", 2, start=20)
    with pytest.raises(DatasetError, match="classes with no images in train: dog"):
        scan_folder(tmp_path)


def test_same_image_in_two_classes_is_excluded_from_both(tmp_path: Path) -> None:
    written = write_digits_dataset(tmp_path, per_class=4, classes=range(2))
    shared = written["0"][0]
    copy = tmp_path / "1" / "copy.png"
    shutil.copyfile(shared, copy)
    (tmp_path / "0" / "again").mkdir()
    twin = tmp_path / "0" / "again" / "twin.png"
    shutil.copyfile(written["0"][1], twin)

    report = scan_folder(tmp_path)
    skipped = dict(report.skipped)
    assert skipped[shared] == f"same image also in class '1' ({copy})"
    assert skipped[copy] == f"same image also in class '0' ({shared})"
    assert skipped[twin] == f"duplicate of {written['0'][1]}"
    kept = {path for path, _ in report.items["all"]}
    assert shared not in kept and copy not in kept and written["0"][1] in kept
    assert report.counts() == {"0": 3, "1": 4}


def test_a_single_class_is_refused_by_name(tmp_path: Path) -> None:
    write_photo_dataset(tmp_path, per_class=3, size=48, classes={"cat": "chelsea"})
    with pytest.raises(DatasetError, match=r"only one class \('cat'\); .* at least two"):
        scan_folder(tmp_path)
    assert scan_folder(tmp_path, for_training=False).counts() == {"cat": 3}


def test_folders_without_class_images_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no class folders with images in"):
        scan_folder(tmp_path)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("nothing here\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no class folders with images in"):
        scan_folder(tmp_path)
    _squares(tmp_path, 3)  # images, but not in class folders
    with pytest.raises(DatasetError, match="3 files lie directly in it"):
        scan_folder(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        scan_folder(tmp_path / "missing")
    with pytest.raises(DatasetError, match="is not a folder"):
        scan_folder(tmp_path / "img_000.png")


def test_classes_with_too_few_images_are_named(tmp_path: Path) -> None:
    _squares(tmp_path / "bird", 5)
    _squares(tmp_path / "cat", 1, start=10)
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "empty.jpg").write_bytes(b"")
    with pytest.raises(
        DatasetError, match=r"^classes with fewer than 2 images: cat \(1\), dog \(0\)$"
    ):
        scan_folder(tmp_path)


def test_imbalance_is_warned_about_above_a_ratio_of_three(tmp_path: Path) -> None:
    write_digits_dataset(tmp_path, per_class=13, classes=[0])
    write_digits_dataset(tmp_path, per_class=4, classes=[1])
    report = scan_folder(tmp_path)
    assert report.warnings[0] == (
        "classes are imbalanced: 0 has 13 images, 1 4; "
        "a balanced sampler/class weights will be used"
    )
    assert "Warning: classes are imbalanced" in report.summary()
    shutil.move(tmp_path / "0" / "0_012.png", tmp_path / "0_012.png")  # 12 vs 4: ratio 3
    assert not any("imbalanced" in warning for warning in scan_folder(tmp_path).warnings)


@pytest.fixture(scope="module")
def uneven_digits(tmp_path_factory: pytest.TempPathFactory) -> ScanReport:
    root = tmp_path_factory.mktemp("uneven")
    for digit, count in ((0, 20), (1, 10), (2, 3), (3, 2)):
        write_digits_dataset(root, per_class=count, classes=[digit])
    return scan_folder(root)


def test_split_is_stratified_per_class(uneven_digits: ScanReport) -> None:
    split = make_split(uneven_digits, val_fraction=0.2, seed=0)
    val = np.bincount([label for _, label in split.val], minlength=4).tolist()
    train = np.bincount([label for _, label in split.train], minlength=4).tolist()
    assert val == [4, 2, 1, 1]  # at least one of each class, even the smallest
    assert train == [16, 8, 2, 1]
    assert split.test == []
    everything = {path for path, _ in uneven_digits.items["all"]}
    train_paths = {path for path, _ in split.train}
    val_paths = {path for path, _ in split.val}
    assert train_paths | val_paths == everything and not train_paths & val_paths

    mostly_val = make_split(uneven_digits, val_fraction=0.9, seed=0)
    assert np.bincount([label for _, label in mostly_val.train]).tolist() == [2, 1, 1, 1]


def test_split_is_seeded(uneven_digits: ScanReport) -> None:
    first = make_split(uneven_digits, seed=0)
    assert make_split(uneven_digits, seed=0) == first
    assert make_split(uneven_digits, seed=1).val != first.val


def test_split_does_not_depend_on_listing_order(uneven_digits: ScanReport) -> None:
    shuffled = list(uneven_digits.items["all"])
    random.Random(5).shuffle(shuffled)
    listed_differently = ScanReport(
        uneven_digits.root, "folders", uneven_digits.classes, {"all": shuffled}
    )
    assert make_split(listed_differently, seed=7) == make_split(uneven_digits, seed=7)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_split_fraction_must_be_strictly_between_0_and_1(uneven_digits, fraction) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        make_split(uneven_digits, val_fraction=fraction)


def test_class_weights_are_inverse_frequency_with_mean_one() -> None:
    weights = class_weights([0, 0, 0, 1], 2)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, [0.5, 1.5])
    # counts 1, 2, 3, 0 → 1, 1/2, 1/3 (mean 11/18) → 18/11, 9/11, 6/11; absent class 0
    np.testing.assert_allclose(class_weights([0, 1, 1, 2, 2, 2], 4), [18 / 11, 9 / 11, 6 / 11, 0])
    with pytest.raises(ValueError, match=r"^labels must be between 0 and 1$"):
        class_weights([0, 2], 2)
    with pytest.raises(ValueError, match=r"^no labels$"):
        class_weights([], 2)


def test_balanced_sample_weights_draw_every_class_equally() -> None:
    labels = [0, 0, 0, 1, 2, 2]
    weights = balanced_sample_weights(labels)
    np.testing.assert_allclose(weights, [2 / 3, 2 / 3, 2 / 3, 2, 1, 1])
    per_class = np.bincount(labels, weights=weights)
    np.testing.assert_allclose(per_class, [2, 2, 2])
    assert balanced_sample_weights([]).shape == (0,)


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")
def test_symbolic_link_loops_inside_a_class_folder_end(tmp_path: Path) -> None:
    _squares(tmp_path / "cat", 2)
    _squares(tmp_path / "dog", 2, start=10)
    (tmp_path / "cat" / "loop").symlink_to(tmp_path / "cat", target_is_directory=True)
    assert scan_folder(tmp_path).counts() == {"cat": 2, "dog": 2}
