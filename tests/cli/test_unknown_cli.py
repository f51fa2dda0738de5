"""`cnn-desktop classify` and `evaluate` with the unknown detector (real CLI in a subprocess):
the JSON field, the CSV column, the table marker, ``--unknown off``, the built-in model saying
it has none, and ``evaluate``'s unknown rate."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.cli.test_cli import json_records, run_cli
from tests.unknown_models import FiveDigitModel, train_five_digit_model

NOTE = "cnn-desktop: note:"


@pytest.fixture(scope="module", autouse=True)
def _model_cached(default_bundle) -> None:
    """Build the default model into the shared test cache once, before any subprocess runs."""


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory) -> FiveDigitModel:
    return train_five_digit_model(tmp_path_factory.mktemp("five-digits-cli"))


def classify(five: FiveDigitModel, paths: list[Path], *options: str):
    done = run_cli("classify", *paths, "--model", five.bundle.path, "--quiet", *options)
    assert done.returncode == 0, done.stderr
    return done


def test_json_says_unknown_for_photos_and_keeps_the_closest_classes(five: FiveDigitModel) -> None:
    paths = five.photos[:6] + five.held_out[:10]
    done = classify(five, paths, "--format", "json", "--top-k", "2")
    records = json_records(done.stdout)
    assert NOTE not in done.stderr
    assert all(records[str(p)]["unknown"] is True for p in five.photos[:6])
    known = [records[str(p)]["unknown"] for p in five.held_out[:10]]
    assert set(known) <= {True, False} and known.count(False) >= 7
    for record in records.values():  # the predictions stay, as the closest classes
        assert record["predictions"][0]["label"] in {"0", "1", "2", "3", "4"}
        assert len(record["predictions"]) == 2


def test_csv_has_an_unknown_column_on_every_row(five: FiveDigitModel) -> None:
    paths = [five.photos[0], five.held_out[0]]
    rows = list(csv.DictReader(io.StringIO(classify(five, paths, "--format", "csv").stdout)))
    assert rows and all(row["unknown"] in ("true", "false") for row in rows)
    assert {row["unknown"] for row in rows if row["path"] == str(five.photos[0])} == {"true"}


def test_table_marks_unknown_images(five: FiveDigitModel) -> None:
    out = classify(five, [five.photos[0]]).stdout
    assert "unknown — none of these; the closest classes:" in out


def test_unknown_off_decides_nothing_and_says_nothing(five: FiveDigitModel) -> None:
    done = classify(five, five.photos[:3], "--format", "json", "--unknown", "off")
    assert NOTE not in done.stderr
    assert [r["unknown"] for r in json_records(done.stdout).values()] == [None] * 3
    rows = classify(five, five.photos[:1], "--format", "csv", "--unknown", "off").stdout
    assert {row["unknown"] for row in csv.DictReader(io.StringIO(rows))} == {""}


def test_the_built_in_model_says_once_that_it_has_no_detector_when_asked(photos) -> None:
    done = run_cli(
        "classify", photos["chelsea"], photos["coffee"], "--format", "json", "--unknown", "auto"
    )
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith(NOTE)]
    assert len(notes) == 1 and "has no unknown detector" in notes[0], done.stderr
    assert [r["unknown"] for r in json_records(done.stdout).values()] == [None, None]
    for quiet_options in ((), ("--unknown", "off")):  # the default keeps stderr quiet
        quiet = run_cli("classify", photos["chelsea"], "--format", "json", *quiet_options)
        assert NOTE not in quiet.stderr
        assert [r["unknown"] for r in json_records(quiet.stdout).values()] == [None]


def test_a_bad_unknown_option_is_one_usage_error(photos) -> None:
    done = run_cli("classify", photos["chelsea"], "--unknown", "maybe")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--unknown" in done.stderr and "invalid choice" in done.stderr


def test_evaluate_reports_the_unknown_rate(five: FiveDigitModel, tmp_path: Path) -> None:
    folder = tmp_path / "labelled"
    for path in five.held_out:
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    done = run_cli("evaluate", five.bundle.path, folder, "--format", "json")
    assert done.returncode == 0, done.stderr
    unknown = json.loads(done.stdout)["unknown"]
    assert unknown["images"] <= 0.2 * len(five.held_out) and 0 <= unknown["rate"] <= 0.2
    assert unknown["accuracy_of_known"] >= 0.9
    table = run_cli("evaluate", five.bundle.path, folder).stdout
    assert f"Unknown (none of these): {unknown['rate']:.2%}" in table
