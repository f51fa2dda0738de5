"""The ``cnn-desktop`` command as a user runs it: a real subprocess, real photos, real model."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.bad_inputs import write_bad_input_corpus

REPO_ROOT = Path(__file__).resolve().parents[2]
CATS = {"tabby", "tiger cat", "Egyptian cat"}
COFFEE = {"espresso", "cup"}
PROGRESS_MARK = "Classifying"


@pytest.fixture(scope="module", autouse=True)
def _model_cached(default_bundle) -> None:
    """Build the default model into the shared test cache once, before any subprocess runs."""


def run_cli(
    *args: str | os.PathLike,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    raw: bool = False,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess:
    """Run ``python -m cnn_desktop ARGS`` with this process's environment (shared model cache).

    Args:
        args: Command-line arguments (paths may be bytes-named: they are passed as is).
        timeout: Seconds before the run is killed.
        env: Variables to add to or change in the environment.
        raw: Return stdout and stderr as bytes rather than decoded text.
        prefix: A command to run it under (e.g. ``setpriv ...``).
    """
    return subprocess.run(
        [*prefix, sys.executable, "-m", "cnn_desktop", *map(os.fsencode, args)],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=not raw,
        encoding=None if raw else "utf-8",
        timeout=timeout,
    )


def json_records(stdout: str) -> dict[str, dict]:
    """Every stdout line parsed as one JSON object, keyed by path."""
    records = {}
    for line in stdout.splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        assert record["path"] not in records, f"{record['path']} reported twice"
        records[record["path"]] = record
    return records


def assert_predictions(record: dict, top_k: int) -> list[dict]:
    """``record`` is a well-formed classification with ``top_k`` classes, best first."""
    assert "error" not in record, record
    predictions = record["predictions"]
    assert len(predictions) == top_k
    for p in predictions:
        assert set(p) == {"label", "index", "confidence"}
        assert isinstance(p["label"], str) and p["label"]
        assert isinstance(p["index"], int) and 0 <= p["index"] < 1000
        assert 0.0 <= p["confidence"] <= 1.0
    confidences = [p["confidence"] for p in predictions]
    assert confidences == sorted(confidences, reverse=True)
    assert sum(confidences) <= 1.0 + 1e-4
    return predictions


def test_json_output_names_a_cat_and_an_espresso(photos):
    result = run_cli(
        "classify", photos["chelsea"], photos["coffee"], "--format", "json", "--top-k", "3"
    )
    assert result.returncode == 0, result.stderr
    records = json_records(result.stdout)
    assert list(records) == [str(photos["chelsea"]), str(photos["coffee"])]
    cat = assert_predictions(records[str(photos["chelsea"])], 3)
    coffee = assert_predictions(records[str(photos["coffee"])], 3)
    assert cat[0]["label"] in CATS
    assert coffee[0]["label"] in COFFEE
    assert "Traceback" not in result.stderr


def test_csv_output_parses_with_one_row_per_class_and_errors_in_their_column(
    photos,
    tmp_path: Path,
):
    missing = tmp_path / "gone.jpg"
    result = run_cli("classify", photos["chelsea"], missing, "--format", "csv", "--top-k", "2")
    assert result.returncode == 1
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["path", "rank", "label", "index", "confidence", "error", "unknown"]
    body = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    cat_rows = [r for r in body if r["path"] == str(photos["chelsea"])]
    assert [r["rank"] for r in cat_rows] == ["1", "2"]
    assert cat_rows[0]["label"] in CATS
    confidences = [float(r["confidence"]) for r in cat_rows]
    assert all(0 <= c <= 1 for c in confidences) and confidences[0] >= confidences[1]
    assert all(r["error"] == "" and 0 <= int(r["index"]) < 1000 for r in cat_rows)
    missing_rows = [r for r in body if r["path"] == str(missing)]
    assert len(missing_rows) == 1
    assert "file not found" in missing_rows[0]["error"]
    assert missing_rows[0]["label"] == ""
    assert len(body) == 3


def test_table_output_prints_percentages(photos):
    result = run_cli("classify", photos["chelsea"], "--top-k", "4")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(photos["chelsea"])
    rows = [re.fullmatch(r"\s+(\d{1,3}\.\d\d)%\s+(.+)", line) for line in lines[1:]]
    assert all(rows) and len(rows) == 4, result.stdout
    percentages = [float(m.group(1)) for m in rows]
    assert rows[0].group(2) in CATS
    assert percentages == sorted(percentages, reverse=True)
    assert 10 < percentages[0] <= 100 and sum(percentages) <= 100.05


def test_bad_input_corpus_in_one_batch_reports_each_bad_file_and_classifies_the_rest(
    photos,
    tmp_path: Path,
):
    folder = tmp_path / "mixed"
    corpus = write_bad_input_corpus(folder)
    shutil.copy(photos["chelsea"], folder / "chelsea.png")
    shutil.copy(photos["coffee_jpg"], folder / "coffee.jpg")

    result = run_cli("classify", folder, "--format", "json", "--top-k", "5")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    records = json_records(result.stdout)
    by_name = {Path(p).name: r for p, r in records.items()}
    assert all(Path(p).parent == folder for p in records), "only the folder's own files"
    broken = 0
    for item in corpus:
        if item.name == "folder.jpg":
            assert item.name not in by_name, "a folder named like an image is walked, not read"
            continue
        record = by_name[item.name]
        if item.loads:
            assert_predictions(record, 5)
        else:
            broken += 1
            assert "predictions" not in record, record
            assert item.error_contains in record["error"].lower(), (item.name, record)
    assert by_name["chelsea.png"]["predictions"][0]["label"] in CATS
    assert by_name["coffee.jpg"]["predictions"][0]["label"] in COFFEE
    assert len(records) == len(corpus) - 1 + 2
    assert f"{broken} of {len(records)} could not be classified" in result.stderr


def test_progress_bar_for_many_images_unless_quiet(photos):
    five = [photos[name] for name in ("chelsea", "coffee", "rocket", "astronaut", "coffee_jpg")]
    many = run_cli("classify", *five, "--format", "json")
    assert many.returncode == 0, many.stderr
    assert PROGRESS_MARK in many.stderr and "5/5" in many.stderr
    assert len(json_records(many.stdout)) == 5, "the bar never leaks into stdout"

    quiet = run_cli("classify", *five, "--format", "json", "--quiet")
    assert quiet.returncode == 0
    assert PROGRESS_MARK not in quiet.stderr
    assert len(json_records(quiet.stdout)) == 5

    one = run_cli("classify", photos["chelsea"], "--format", "json")
    assert one.returncode == 0
    assert PROGRESS_MARK not in one.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["classify"], id="no-paths"),
        pytest.param(["classify", "x.jpg", "--top-k", "0"], id="top-k-0"),
        pytest.param(["classify", "x.jpg", "--top-k", "many"], id="top-k-text"),
        pytest.param(["classify", "x.jpg", "--backend", "nope"], id="unknown-backend"),
        pytest.param(["classify", "x.jpg", "--format", "xml"], id="unknown-format"),
        pytest.param(["frobnicate"], id="unknown-command"),
    ],
)
def test_bad_usage_exits_2_with_a_usage_message(args: list[str]):
    result = run_cli(*args, timeout=60)
    assert result.returncode == 2
    assert "usage:" in result.stderr and "error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_garbage_onnx_model_is_a_one_line_error(photos, tmp_path: Path):
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"this is not a protobuf \x00\xff\x10" * 40)
    result = run_cli("classify", photos["chelsea"], "--model", garbage)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cnn-desktop: error:")
    assert "model.onnx" in lines[0]
    assert result.stdout == ""


def test_missing_model_file_is_a_usage_error(photos, tmp_path: Path):
    result = run_cli("classify", photos["chelsea"], "--model", tmp_path / "none.onnx")
    assert result.returncode == 2
    assert result.stderr.startswith("cnn-desktop: error:")
    assert "Traceback" not in result.stderr


def test_missing_path_is_reported_and_does_not_stop_the_others(photos, tmp_path: Path):
    missing = tmp_path / "nowhere" / "cat.jpg"
    alone = run_cli("classify", missing, "--format", "json")
    assert alone.returncode == 1
    assert json_records(alone.stdout) == {
        str(missing): {"path": str(missing), "error": "file not found"}
    }
    assert "Traceback" not in alone.stderr

    mixed = run_cli("classify", missing, photos["chelsea"], "--format", "json", "--top-k", "1")
    assert mixed.returncode == 1
    records = json_records(mixed.stdout)
    assert records[str(missing)]["error"] == "file not found"
    assert assert_predictions(records[str(photos["chelsea"])], 1)[0]["label"] in CATS


def test_torch_backend_agrees_with_onnx(photos):
    """The README: on the same images the backends agree on top-1 and within 1e-4 in
    probability (JSON confidences carry 6 decimals, enough to check that)."""
    images = [photos[name] for name in ("chelsea", "coffee", "rocket", "astronaut")]
    args = ("classify", *images, "--format", "json", "--top-k", "3")
    onnx = run_cli(*args)
    torch = run_cli(*args, "--backend", "torch", "--device", "cpu")
    assert (onnx.returncode, torch.returncode) == (0, 0), onnx.stderr + torch.stderr
    onnx_records, torch_records = json_records(onnx.stdout), json_records(torch.stdout)
    assert set(onnx_records) == set(torch_records) == {str(image) for image in images}
    for image in images:
        expected = assert_predictions(onnx_records[str(image)], 3)
        got = assert_predictions(torch_records[str(image)], 3)
        assert (got[0]["label"], got[0]["index"]) == (expected[0]["label"], expected[0]["index"])
        expected_by_index = {p["index"]: p["confidence"] for p in expected}
        for p in got:
            if p["index"] in expected_by_index:
                assert p["confidence"] == pytest.approx(expected_by_index[p["index"]], abs=1e-4)
        assert got[0]["confidence"] == pytest.approx(expected[0]["confidence"], abs=1e-4)


def test_info_shows_the_cpu_provider_working():
    text = run_cli("info", timeout=60)
    assert text.returncode == 0, text.stderr
    assert re.search(r"CPUExecutionProvider\s+working", text.stdout), text.stdout

    as_json = run_cli("info", "--format", "json", timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    info = json.loads(as_json.stdout)
    providers = {p["name"]: p for p in info["onnx_providers"]}
    assert providers["CPUExecutionProvider"]["working"] is True


NO_TORCH_PROBE = """
import contextlib, io, sys
from cnn_desktop.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["classify", sys.argv[1], "--format", "json", "--quiet"])
heavy = sorted(m for m in ("torch", "torchvision", "timm") if m in sys.modules)
label = __import__("json").loads(out.getvalue().splitlines()[0])["predictions"][0]["label"]
print("VERDICT", code, "imported:" + (",".join(heavy) or "none"), label)
"""


def test_onnx_classification_never_imports_torch(photos):
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH_PROBE, str(photos["chelsea"])],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    verdict = [line for line in result.stdout.splitlines() if line.startswith("VERDICT")]
    assert len(verdict) == 1, result.stdout + result.stderr
    _, code, imported, label = verdict[0].split(" ", 3)
    assert code == "0"
    assert imported == "imported:none"
    assert label in CATS


def test_output_piped_into_head_ends_quietly(photos, tmp_path: Path):
    for i in range(40):
        shutil.copyfile(photos["chelsea"], tmp_path / f"cat_{i:02d}.png")
    args = ["classify", str(tmp_path), "--format", "json", "--quiet", "--batch-size", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "cnn_desktop", *args],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # what `| head -1` does after one line
    stderr = process.stderr.read()
    process.wait(timeout=60)
    assert json.loads(first)["path"].endswith("cat_00.png")
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
