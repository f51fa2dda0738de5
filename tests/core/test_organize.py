"""Sorting images into class folders and exporting a CSV, as a user's files would be treated."""

from __future__ import annotations

import csv
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from skimage import data

from cnn_desktop.core.inference.predict import ImageResult, Prediction
from cnn_desktop.core.inference.results import (
    CSV_COLUMNS,
    SortCancelled,
    parse_top5,
    read_cell,
    safe_folder_name,
    sort_into_class_folders,
    write_results_csv,
)
from cnn_desktop.core.tasks import Cancelled, CancelToken

HOSTILE_LABELS = [
    "../../etc",
    "..",
    "CON",
    "nul.txt",
    "a/b",
    "a\\b",
    "",
    ".",
    "x" * 500,
    "tabby, tabby cat",
    "line\nbreak\ttab\x00nul",
    "trailing dots...",
    "/",
    "\u202eevil\u202c",
]


def write_photos(folder: Path, count: int) -> list[Path]:
    """``count`` small real photos (crops of scikit-image's cat) with distinct bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    cat = data.chelsea()
    paths = []
    for i in range(count):
        path = folder / f"photo_{i}.jpg"
        Image.fromarray(cat[i : i + 64, i : i + 64]).save(path, quality=90)
        paths.append(path)
    return paths


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_copies_into_label_folders_keeping_bytes_and_times(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "in", 3)
    old = time.time() - 86_400
    os.utime(photos[0], (old, old))
    out = tmp_path / "out"
    report = sort_into_class_folders(
        [(photos[0], "tabby"), (photos[1], "tabby"), (photos[2], "espresso")], out
    )
    assert (out / "tabby" / "photo_0.jpg").read_bytes() == photos[0].read_bytes()
    assert (out / "espresso" / "photo_2.jpg").exists()
    assert abs((out / "tabby" / "photo_0.jpg").stat().st_mtime - old) < 2
    assert all(p.exists() for p in photos)  # copies leave the originals
    assert [t for _s, t in report.copied] == [
        out / "tabby" / "photo_0.jpg",
        out / "tabby" / "photo_1.jpg",
        out / "espresso" / "photo_2.jpg",
    ]
    assert sorted(report.folders_created) == [out / "espresso", out / "tabby"]
    assert report.summary() == "Copied 3 images into 2 folders"
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]


def test_clashes_never_overwrite(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "in", 2)
    twin = write_photos(tmp_path / "other", 1)[0]  # same file name as photos[0]
    existing = tmp_path / "out" / "cat" / "photo_0.jpg"
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"the user's own file")
    report = sort_into_class_folders(
        [(photos[0], "cat"), (twin, "cat"), (photos[0], "cat")], tmp_path / "out"
    )
    assert existing.read_bytes() == b"the user's own file"
    assert [t.name for _s, t in report.copied] == [
        "photo_0 (2).jpg",
        "photo_0 (3).jpg",
        "photo_0 (4).jpg",
    ]
    assert (existing.parent / "photo_0 (3).jpg").read_bytes() == twin.read_bytes()
    assert report.folders_created == []


@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_hostile_labels_stay_inside_destination(tmp_path: Path, label: str) -> None:
    photo = write_photos(tmp_path / "in", 1)[0]
    out = tmp_path / "out"
    report = sort_into_class_folders([(photo, label)], out)
    assert report.skipped == []
    [(_source, target)] = report.copied
    assert target.parent.parent == out
    assert target.resolve().is_relative_to(out.resolve())
    name = target.parent.name
    assert name and name not in (".", "..") and not name.startswith(".")
    assert not any(ch in name for ch in '<>:"/\\|?*\n\t\x00\u202e')
    assert name.split(".")[0].upper() not in ("CON", "NUL")
    assert len(name.encode()) <= 200 and not name.endswith((".", " "))
    assert files_under(tmp_path / "in") == [photo]  # nothing escaped upwards


def test_folder_names_stay_readable() -> None:
    assert safe_folder_name("tabby, tabby cat") == "tabby, tabby cat"
    assert safe_folder_name("Ölfläschchen 🐈‍⬛") == "Ölfläschchen 🐈‍⬛"
    assert safe_folder_name("猫") == "猫"
    assert safe_folder_name("a/b") == "a_b"
    assert safe_folder_name("CON") == "CON_"
    assert safe_folder_name("") == "unlabelled"


def test_distinct_labels_get_distinct_folders(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "in", 3)
    report = sort_into_class_folders(
        [(photos[0], "Cat"), (photos[1], "cat"), (photos[2], "Cat")], tmp_path / "out"
    )
    assert report.folders == {"Cat": tmp_path / "out" / "Cat", "cat": tmp_path / "out" / "cat (2)"}
    assert [t.parent.name for _s, t in report.copied] == ["Cat", "cat (2)", "Cat"]


def test_a_file_where_a_folder_should_be_is_left_alone(tmp_path: Path) -> None:
    photo = write_photos(tmp_path / "in", 1)[0]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "cat").write_text("not a folder")
    report = sort_into_class_folders([(photo, "cat")], tmp_path / "out")
    assert (tmp_path / "out" / "cat").read_text() == "not a folder"
    assert report.copied[0][1] == tmp_path / "out" / "cat (2)" / "photo_0.jpg"


def test_move_removes_sources_and_never_overwrites(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "in", 2)
    content = [p.read_bytes() for p in photos]
    clash = tmp_path / "out" / "dog" / "photo_1.jpg"
    clash.parent.mkdir(parents=True)
    clash.write_bytes(b"keep me")
    report = sort_into_class_folders(
        [(photos[0], "cat"), (photos[1], "dog")], tmp_path / "out", move=True
    )
    assert not any(p.exists() for p in photos)
    assert report.copied == []
    assert [t for _s, t in report.moved] == [
        tmp_path / "out" / "cat" / "photo_0.jpg",
        tmp_path / "out" / "dog" / "photo_1 (2).jpg",
    ]
    assert [t.read_bytes() for _s, t in report.moved] == content
    assert clash.read_bytes() == b"keep me"
    assert report.summary() == "Moved 2 images into 2 folders"


def test_vanished_and_unreadable_sources_are_reported_and_others_done(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "in", 3)
    photos[1].unlink()
    folder_not_file = tmp_path / "in" / "a_folder.jpg"
    folder_not_file.mkdir()
    items = [(photos[0], "cat"), (photos[1], "cat"), (folder_not_file, "cat"), (photos[2], "dog")]
    report = sort_into_class_folders(items, tmp_path / "out")
    assert [s for s, _t in report.copied] == [photos[0], photos[2]]
    assert [s for s, _r in report.skipped] == [photos[1], folder_not_file]
    assert report.skipped == [
        (photos[1], "file not found (moved or deleted?)"),
        (folder_not_file, "not a file"),
    ]
    assert report.summary() == "Copied 2 images into 2 folders; 2 skipped"


def test_unreadable_source_is_skipped_without_leftovers(tmp_path: Path, monkeypatch) -> None:
    photos = write_photos(tmp_path / "in", 2)
    real_copy = shutil.copy2

    def copy2(source: Path, target: Path) -> None:
        if Path(source) == photos[0]:
            Path(target).write_bytes(b"half a fi")  # fails midway, as a bad disk would
            raise PermissionError(13, "Permission denied")
        real_copy(source, target)

    monkeypatch.setattr(shutil, "copy2", copy2)
    report = sort_into_class_folders([(p, "cat") for p in photos], tmp_path / "out")
    assert report.skipped == [(photos[0], "permission denied")]
    assert files_under(tmp_path / "out") == [tmp_path / "out" / "cat" / "photo_1.jpg"]


@pytest.mark.parametrize("move", [False, True])
def test_file_systems_without_hard_links_still_never_overwrite(
    tmp_path: Path, monkeypatch, move: bool
) -> None:
    def no_links(*_args: object) -> None:
        raise OSError(1, "Operation not permitted")  # as on FAT, or across devices

    monkeypatch.setattr(os, "link", no_links)
    photos = write_photos(tmp_path / "in", 2)
    content = photos[0].read_bytes()
    existing = tmp_path / "out" / "cat" / "photo_0.jpg"
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"keep me")
    report = sort_into_class_folders([(p, "cat") for p in photos], tmp_path / "out", move=move)
    assert existing.read_bytes() == b"keep me"
    assert (existing.parent / "photo_0 (2).jpg").read_bytes() == content
    assert len(report.moved if move else report.copied) == 2
    assert photos[0].exists() is not move
    assert len(files_under(tmp_path / "out")) == 3  # no temporary files left


def test_cancel_midway_leaves_complete_files_only(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "in", 6)
    token = CancelToken()
    seen: list[float] = []

    def progress(fraction: float, _message: str) -> None:
        seen.append(fraction)
        if len(seen) == 3:
            token.cancel()

    with pytest.raises(Cancelled) as caught:
        sort_into_class_folders(
            [(p, "cat") for p in photos], tmp_path / "out", progress=progress, cancel=token
        )
    assert isinstance(caught.value, SortCancelled)
    report = caught.value.report
    assert len(report.copied) == 3
    assert files_under(tmp_path / "out") == sorted(t for _s, t in report.copied)
    for source, target in report.copied:
        assert target.read_bytes() == source.read_bytes()


def test_empty_batch_and_summary() -> None:
    from cnn_desktop.core.inference.results import SortReport

    assert SortReport().summary() == "No images sorted"
    report = SortReport(copied=[(Path("a.jpg"), Path("out/cat/a.jpg"))])
    assert report.summary() == "Copied 1 image into 1 folder"


TRICKY = [
    "tabby, tabby cat",
    'say "cheese"',
    "two\nlines",
    "Ölfläschchen 猫 🐈",
    '=HYPERLINK("http://x")',
    "semi;colon:and\\slash",
    "'quoted'",
]


def test_csv_round_trips_tricky_labels(tmp_path: Path) -> None:
    rows = [
        ImageResult(
            tmp_path / f"img, {i}.jpg",
            (Prediction(label, i, 0.75), Prediction(TRICKY[-1 - i], 7, 0.125)),
        )
        for i, label in enumerate(TRICKY)
    ]
    rows.append(ImageResult(tmp_path / "broken.jpg", error="image is truncated, or corrupt"))
    out = tmp_path / "results.csv"
    assert write_results_csv(rows, out) == len(rows)
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM, for Excel
    with open(out, encoding="utf-8-sig", newline="") as stream:
        header, *lines = list(csv.reader(stream))
    assert tuple(header) == CSV_COLUMNS
    assert len(lines) == len(rows)
    for row, line in zip(rows[:-1], lines, strict=False):
        path, label, confidence, top5, error, unknown = line
        assert path == str(row.path) and unknown == ""  # no detector decided it
        assert read_cell(label) == row.predictions[0].label
        assert float(confidence) == pytest.approx(0.75)
        assert parse_top5(top5) == [(p.label, p.confidence) for p in row.predictions]
        assert error == ""
    formula = lines[TRICKY.index('=HYPERLINK("http://x")')]
    assert formula[1].startswith("'=") and formula[3].startswith("'=")  # never run as formula
    broken = [str(tmp_path / "broken.jpg"), "", "", "", "image is truncated, or corrupt", ""]
    assert lines[-1] == broken
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_csv_writes_a_file_name_that_is_not_utf8_as_escapes(tmp_path: Path) -> None:
    # On Linux a name with the byte 0xE9 (Latin-1 "é") reaches Python as a lone surrogate.
    name = os.fsdecode(b"caf\xe9.jpg")
    rows = [ImageResult(tmp_path / name, (Prediction("tabby", 281, 0.5),))]
    out = tmp_path / "results.csv"
    assert write_results_csv(rows, out) == 1
    with open(out, encoding="utf-8-sig", newline="") as stream:
        _header, line = list(csv.reader(stream))
    assert line[0] == str(tmp_path / "caf\\udce9.jpg")
    assert line[1] == "tabby"


@dataclass
class EntryLike:
    path: Path
    predictions: tuple[Prediction, ...]
    error: str | None


def test_csv_replaces_old_file_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    out.write_text("old")

    def rows():
        yield EntryLike(tmp_path / "a.jpg", (Prediction("cat", 0, 0.5),), None)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_results_csv(rows(), out)
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]
    top6 = tuple(Prediction(f"c{i}", i, 0.1) for i in range(6))
    assert write_results_csv([EntryLike(tmp_path / "b.jpg", top6, None)], out) == 1
    with open(out, encoding="utf-8-sig", newline="") as stream:
        line = list(csv.reader(stream))[1]
    assert len(parse_top5(line[3])) == 5
