"""`cnn-desktop train` and `cnn-desktop evaluate` run for real in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.datasets import write_digits_dataset


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cnn_desktop", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=600,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli-train")
    data = folder / "digits"
    write_digits_dataset(data, per_class=30, classes=range(3))
    done = cli(
        "train", str(data), "--out", str(folder / "digits-model"), "--mode", "scratch",
        "--arch", "lenet5", "--epochs", "10", "--seed", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ONNX export verified" in done.stderr
    assert "Traceback" not in done.stderr
    bundle = Path(done.stdout.strip().splitlines()[-1])
    assert bundle.name == "digits-model.cnnmodel" and bundle.is_dir()
    return data, bundle


def test_evaluate_json_is_one_object_with_the_documented_keys(trained) -> None:
    data, bundle = trained
    done = cli("evaluate", str(bundle), str(data), "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {"accuracy", "classes", "per_class", "confusion_matrix", "errors"} <= set(result)
    assert result["classes"] == ["0", "1", "2"]
    assert result["accuracy"] > 0.6
    assert set(result["per_class"]["0"]) == {"precision", "recall", "f1", "support"}
    assert sum(map(sum, result["confusion_matrix"])) == 90


def test_evaluate_table_and_classify_use_the_trained_model(trained) -> None:
    data, bundle = trained
    table = cli("evaluate", str(bundle), str(data))
    assert table.returncode == 0 and "Confusion matrix" in table.stdout
    done = cli("classify", str(data / "1"), "--model", str(bundle), "--format", "json", "--quiet")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    top = [row["predictions"][0]["label"] for row in rows]
    assert len(rows) == 30 and top.count("1") >= 18


def test_bad_training_requests_are_usage_errors(tmp_path: Path) -> None:
    single = tmp_path / "single"
    write_digits_dataset(single, per_class=4, classes=range(1))
    done = cli("train", str(single), "--out", str(tmp_path / "m"))
    assert done.returncode == 2 and "one class" in done.stderr
    assert "Traceback" not in done.stderr
    done = cli("train", str(single), "--out", str(tmp_path / "m"), "--mode", "sideways")
    assert done.returncode == 2
    done = cli("train", str(tmp_path / "missing"), "--out", str(tmp_path / "m"))
    assert done.returncode == 2 and "does not exist" in done.stderr
    done = cli("train", str(single), "--out", str(tmp_path / "m"), "--augment", "wobble")
    assert done.returncode == 2 and "wobble" in done.stderr
