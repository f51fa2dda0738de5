"""Folder and file names beyond ASCII through ``cnn-desktop classify``: every output format
names each file exactly as it is on disk (UTF-8), whether it was classified or failed."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from tests.processes import run_python

CATS = {"tabby", "tiger cat", "Egyptian cat"}
COFFEE = {"espresso", "cup"}


@pytest.fixture(scope="module", autouse=True)
def _model_cached(default_bundle) -> None:
    """Build the default model into the shared test cache once, before any subprocess runs."""


@pytest.fixture(scope="module")
def named(photos, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A cat, a coffee and an empty file under Cyrillic, accented, CJK and emoji names."""
    root = tmp_path_factory.mktemp("names") / "Фото"
    (root / "子フォルダ").mkdir(parents=True)
    files = {
        "cat": root / "café 猫.png",
        "coffee": root / "子フォルダ" / "naïve ☕ Ελληνικά.jpg",
        "broken": root / "сломан.jpg",
    }
    shutil.copyfile(photos["chelsea"], files["cat"])
    shutil.copyfile(photos["coffee_jpg"], files["coffee"])
    files["broken"].write_bytes(b"")
    files["root"] = root
    return files


def classify(named: dict[str, Path], fmt: str, **env: str):
    done = run_python(
        "-m", "cnn_desktop", "classify", named["root"], "--format", fmt, "--top-k", "2",
        "--quiet", env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # the empty file could not be classified
    assert "Traceback" not in done.stderr
    return done


@pytest.mark.parametrize("locale", [{}, {"LC_ALL": "C", "LANG": "C"}], ids=["utf8", "c-locale"])
def test_json_names_every_file_exactly(named, locale: dict[str, str]) -> None:
    records = {}
    for line in classify(named, "json", **locale).stdout.splitlines():
        record = json.loads(line)
        records[record["path"]] = record
    assert set(records) == {str(named[key]) for key in ("cat", "coffee", "broken")}
    assert records[str(named["cat"])]["predictions"][0]["label"] in CATS
    assert records[str(named["coffee"])]["predictions"][0]["label"] in COFFEE
    assert records[str(named["broken"])]["error"] == "file is empty"


def test_csv_names_every_file_exactly(named) -> None:
    rows = list(csv.DictReader(io.StringIO(classify(named, "csv").stdout)))
    by_path: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_path.setdefault(row["path"], []).append(row)
    assert set(by_path) == {str(named[key]) for key in ("cat", "coffee", "broken")}
    assert [row["rank"] for row in by_path[str(named["cat"])]] == ["1", "2"]
    assert by_path[str(named["cat"])][0]["label"] in CATS
    assert by_path[str(named["broken"])][0]["error"] == "file is empty"


def test_table_names_every_file_and_the_failure_on_stderr_counts_it(named) -> None:
    done = classify(named, "table")
    lines = done.stdout.splitlines()
    for key in ("cat", "coffee", "broken"):
        assert str(named[key]) in lines, (key, lines)
    cat_line = lines.index(str(named["cat"]))
    assert any(label in lines[cat_line + 1] for label in CATS), lines[cat_line + 1]
    broken_line = lines.index(str(named["broken"]))
    assert lines[broken_line + 1].strip() == "error: file is empty"
    assert "1 of 3 could not be classified" in done.stderr
