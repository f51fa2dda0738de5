"""The lazy folder walk: the same outcomes as the list form, found one folder at a time."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cnn_desktop.core.imaging import walk
from cnn_desktop.core.imaging.walk import WalkEntry, collect_image_paths, walk_images
from tests.core.test_images import make_tree


def partition(entries: list[WalkEntry]) -> tuple[list, list, list]:
    images = [e.path for e in entries if e.outcome == "image"]
    problems = [(e.path, e.reason) for e in entries if e.outcome == "problem"]
    skipped = [(e.path, e.reason) for e in entries if e.outcome == "skipped"]
    return images, problems, skipped


def test_the_generator_gives_the_outcomes_of_the_list_form_in_walk_order(tmp_path: Path):
    root = tmp_path / "album"
    make_tree(root)
    (root / "sub" / "deeper" / "todo.md").write_bytes(b"")
    if sys.platform != "win32":
        (root / "sub" / "back").symlink_to(root)  # a loop: walked once
        (root / "dangling.png").symlink_to(tmp_path / "gone.png")
    missing = tmp_path / "missing.jpg"
    inputs = [missing, root / "b.jpg", root]

    entries = list(walk_images(inputs))

    assert partition(entries) == tuple(collect_image_paths(inputs))
    assert [e.path.relative_to(tmp_path) for e in entries if e.outcome == "image"] == [
        Path(p)
        for p in (
            "album/b.jpg",  # given explicitly first; not reported again by the folder walk
            "album/A.png",
            "album/sub/c.JPEG",
            "album/sub/deeper/d.webp",
            "album/x.jpg/inner.png",  # a folder named like an image is walked
        )
    ]
    assert entries[0] == WalkEntry(missing, "problem", "file not found")
    skipped = {e.path.name: e.reason for e in entries if e.outcome == "skipped"}
    assert skipped["notes.txt"] == "not an image type (.txt)"
    assert skipped["todo.md"] == "not an image type (.md)"
    if sys.platform != "win32":
        assert skipped["dangling.png"] == "broken symbolic link"
    assert not any(e.path.name.startswith(".") for e in entries)


def test_the_first_entry_comes_before_a_later_folder_is_listed(tmp_path: Path, monkeypatch):
    root = tmp_path / "album"
    for folder in ("a", "b", "c"):
        (root / folder).mkdir(parents=True)
        (root / folder / f"{folder}.png").write_bytes(b"")
    listed: list[Path] = []
    real_scandir = os.scandir

    def counting_scandir(path):
        listed.append(Path(path))
        return real_scandir(path)

    monkeypatch.setattr(walk.os, "scandir", counting_scandir)
    entries = walk_images([root])

    first = next(entries)
    assert first == WalkEntry(root / "a" / "a.png", "image")
    assert listed == [root, root / "a"], "the walk listed folders before it was asked to"
    # A file that appears in a later folder after the first yield is found: that folder had
    # not been listed yet.
    (root / "c" / "late.png").write_bytes(b"")
    rest = [e.path.relative_to(root) for e in entries]
    assert rest == [Path("b/b.png"), Path("c/c.png"), Path("c/late.png")]
    assert listed == [root, root / "a", root / "b", root / "c"]


def test_a_folder_that_vanishes_before_the_walk_reaches_it_is_a_problem(tmp_path: Path):
    root = tmp_path / "album"
    for folder in ("a", "b"):
        (root / folder).mkdir(parents=True)
        (root / folder / "x.png").write_bytes(b"")
    entries = walk_images([root])
    assert next(entries).path == root / "a" / "x.png"
    (root / "b" / "x.png").unlink()
    (root / "b").rmdir()
    assert list(entries) == [WalkEntry(root / "b", "problem", "file not found")]


def test_a_big_flat_folder_is_walked_in_name_order_without_losing_a_file(tmp_path: Path):
    names = [f"img_{i:05d}.png" for i in range(2_000)]
    for name in reversed(names):
        (tmp_path / name).write_bytes(b"")
    assert [e.path.name for e in walk_images([tmp_path])] == names
