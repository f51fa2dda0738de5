"""``cnn-desktop classify`` on a mixed folder: every non-hidden file has exactly one outcome."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image

from tests.cli.test_cli import CATS, _model_cached, json_records, run_cli  # noqa: F401

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"


def write_mixed_folder(root: Path, photo: Path) -> dict[str, str]:
    """A folder users have: photos in several formats, notes, an EPS, a broken JPEG, a nested
    folder and hidden files; returns each non-hidden file's expected outcome key."""
    (root / "nested" / "deeper").mkdir(parents=True)
    cat = Image.open(photo).convert("RGB")
    cat.save(root / "cat.tga", format="TGA")
    cat.save(root / "nested" / "cat.qoi", format="QOI")
    cat.save(root / "nested" / "deeper" / "cat.jp2", format="JPEG2000")
    shutil.copyfile(photo, root / "cat.png")
    (root / "notes.txt").write_text("where these came from\n", encoding="utf-8")
    (root / "nested" / "todo.txt").write_text("sort\n", encoding="utf-8")
    (root / "README").write_text("no extension\n", encoding="utf-8")
    (root / "figure.eps").write_bytes(EPS)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    (root / ".hidden.txt").write_text("left out\n", encoding="utf-8")
    (root / ".cache").mkdir()
    (root / ".cache" / "thumb.png").write_bytes((root / "cat.png").read_bytes())
    return {
        "cat.png": "predictions",
        "cat.tga": "predictions",
        "nested/cat.qoi": "predictions",
        "nested/deeper/cat.jp2": "predictions",
        "broken.jpg": "error",
        "notes.txt": "skipped",
        "nested/todo.txt": "skipped",
        "README": "skipped",
        "figure.eps": "skipped",
    }


def test_every_file_of_a_mixed_folder_appears_once_in_the_json(photos, tmp_path: Path):
    root = tmp_path / "mixed"
    expected = write_mixed_folder(root, photos["chelsea"])
    on_disk = {
        str(Path(folder, name).relative_to(root))
        for folder, dirs, files in os.walk(root)
        for name in files
        if not any(part.startswith(".") for part in Path(folder, name).relative_to(root).parts)
    }
    assert on_disk == set(expected)

    result = run_cli("classify", root, "--format", "json", "--top-k", "1")
    records = json_records(result.stdout)  # also checks that no path comes twice
    outcomes = {
        str(Path(path).relative_to(root)): next(
            k for k in ("predictions", "error", "skipped") if k in r
        )
        for path, r in records.items()
    }
    assert outcomes == expected
    for name, outcome in expected.items():
        record = records[str(root / name)]
        if outcome == "predictions":
            assert record["predictions"][0]["label"] in CATS, (name, record)
    assert records[str(root / "notes.txt")]["skipped"] == "not an image type (.txt)"
    assert records[str(root / "README")]["skipped"] == "not an image type (no extension)"
    assert records[str(root / "figure.eps")]["skipped"] == (
        "EPS needs an external interpreter (Ghostscript)"
    )
    assert result.returncode == 1  # the broken JPEG is an error
    assert "Traceback" not in result.stderr


def test_table_and_csv_summarise_skipped_files_on_stderr(photos, tmp_path: Path):
    root = tmp_path / "mixed"
    write_mixed_folder(root, photos["chelsea"])
    (root / "broken.jpg").unlink()
    for fmt in ("table", "csv"):
        result = run_cli("classify", root, "--format", fmt, "--top-k", "1", "--quiet")
        assert "4 files skipped: 2 .txt, 1 .eps, 1 no extension" in result.stderr, result.stderr
        assert "notes.txt" not in result.stdout
        assert result.returncode == 0, result.stderr  # skipping is not failing


def test_a_folder_with_only_skipped_files_exits_0(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    (tmp_path / "figure.eps").write_bytes(EPS)
    result = run_cli("classify", tmp_path, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert {r["skipped"] for r in json_records(result.stdout).values()} == {
        "not an image type (.txt)",
        "EPS needs an external interpreter (Ghostscript)",
    }
