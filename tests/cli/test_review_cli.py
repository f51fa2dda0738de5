"""``cnn-desktop review`` in a subprocess: one JSON line per finding, best first, the planted
errors on top; junk files skipped with the scan's reasons; a head model's review reuses the
built-in backbone; it runs without torch; bad input gets one clear line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cnn_desktop.core.training import TrainConfig, train
from tests.cli.test_without_torch import run_without_torch
from tests.datasets import write_junk, write_photo_dataset
from tests.processes import run_python

KEYS = {"kind", "path", "given", "suggested", "score"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, default_bundle) -> dict:
    """Photo crops of three classes, one moved to a wrong class, one copied into another,
    and the junk a real folder collects."""
    root = tmp_path_factory.mktemp("review-cli") / "photos"
    written = write_photo_dataset(root, per_class=12)
    moved = root / "rocket" / "cat_004.jpg"
    written["cat"][4].rename(moved)
    copy = root / "cat" / "coffee_002.jpg"
    shutil.copyfile(written["coffee"][2], copy)
    junk = write_junk(root, class_name="coffee")
    return {"root": root, "moved": moved, "copy": copy, "junk": junk}


def findings_of(done: subprocess.CompletedProcess[str]) -> list[dict]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_json_lines_sorted_by_score_with_the_planted_errors_first(data) -> None:
    done = run_python("-m", "cnn_desktop", "review", data["root"], "--format", "json")
    findings = findings_of(done)
    assert all(finding.keys() >= KEYS for finding in findings)
    scores = [finding["score"] for finding in findings]
    assert scores == sorted(scores, reverse=True)
    top = {Path(f["path"]): f for f in findings[:2]}
    assert set(top) == {data["moved"], data["copy"]}, findings[:4]
    assert (top[data["moved"]]["kind"], top[data["moved"]]["suggested"]) == ("label", "cat")
    duplicate = top[data["copy"]]
    assert (duplicate["kind"], duplicate["given"], duplicate["suggested"]) == (
        "duplicate",
        "cat",
        "coffee",
    )
    assert Path(duplicate["other"]) == data["root"] / "coffee" / "coffee_002.jpg"
    assert "Reviewed 35 images in 3 classes" in done.stderr


def test_junk_is_skipped_with_the_scans_reasons(data) -> None:
    done = run_python("-m", "cnn_desktop", "review", data["root"], "--format", "json", "--quiet")
    findings_of(done)
    for path, reason in data["junk"].items():
        assert f"skipped {path}: {reason}" in done.stderr
    reported = {Path(f["path"]) for f in findings_of(done)}
    assert not reported & set(data["junk"])


def test_the_table_names_given_and_suggested_classes(data) -> None:
    done = run_python("-m", "cnn_desktop", "review", data["root"], "--quiet")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["score", "kind", "given", "suggested", "file"]
    moved_row = next(line for line in lines if "cat_004.jpg" in line)
    assert moved_row.split()[1:4] == ["label", "rocket", "cat"]


def test_a_head_model_reviews_with_the_built_in_backbone(data, tmp_path: Path) -> None:
    model = tmp_path / "photos.cnnmodel"
    last = list(train(data["root"], model, TrainConfig(epochs=5)))[-1]
    assert last.kind == "done", last.message
    done = run_python(
        "-m", "cnn_desktop", "review", data["root"], "--model", model, "--format", "json"
    )
    assert Path(findings_of(done)[0]["path"]) in {data["moved"], data["copy"]}
    assert "embedded by the built-in backbone that photos.cnnmodel was trained on" in done.stderr


def test_review_runs_without_torch(data) -> None:
    done = run_without_torch("review", data["root"], "--format", "json")
    assert {Path(f["path"]) for f in findings_of(done)[:2]} == {data["moved"], data["copy"]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["MISSING"], "does not exist"),
        (["ONE_CLASS"], "only one class"),
        (["DATA", "--model", "MISSING.cnnmodel"], "MISSING.cnnmodel"),
        (["DATA", "--format", "xml"], "invalid choice"),
    ],
)
def test_bad_input_gets_one_clear_line(data, tmp_path: Path, args, message) -> None:
    (tmp_path / "one" / "only").mkdir(parents=True)
    shutil.copyfile(data["moved"], tmp_path / "one" / "only" / "a.jpg")
    places = {
        "MISSING": tmp_path / "missing",
        "ONE_CLASS": tmp_path / "one",
        "DATA": data["root"],
        "MISSING.cnnmodel": tmp_path / "MISSING.cnnmodel",
    }
    done = run_python("-m", "cnn_desktop", "review", *[str(places.get(a, a)) for a in args])
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(("cnn-desktop: error: ", "cnn-desktop review: error: "))
    assert message in lines[-1] and "Traceback" not in done.stderr
    assert done.stdout == ""
