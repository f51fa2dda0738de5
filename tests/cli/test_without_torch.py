"""cnn-desktop without PyTorch, as in the lite installer: classification, head training and
classifying with the trained model work; what needs torch is refused with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.datasets import write_digits_dataset

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
CATS = {"tabby", "tiger cat", "Egyptian cat"}
# Every import of torch, torchvision or timm fails, as where they are not installed.
WITHOUT_TORCH = """
import sys
for name in ("torch", "torchvision", "timm"):
    sys.modules[name] = None
from cnn_desktop.cli import main
code = main(sys.argv[1:])
assert not any(sys.modules.get(n) for n in ("torch", "torchvision", "timm"))
sys.exit(code)
"""


def run_without_torch(*args: str | os.PathLike) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, *map(str, args)],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(autouse=True)
def built_in_model(default_bundle):
    """The built-in model's ONNX bundle exists (the lite build carries it ready-made)."""
    return default_bundle


def test_classification_works_without_torch(photos) -> None:
    done = run_without_torch("classify", photos["chelsea"], "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["predictions"][0]["label"] in CATS


def test_head_training_and_its_model_work_without_torch(tmp_path: Path) -> None:
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=12, classes=range(3))
    out = tmp_path / "digits-model"
    done = run_without_torch("train", data, "--out", out, "--epochs", "15", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "ONNX export verified" in done.stdout + done.stderr
    assert "Recorded as run " in done.stderr  # the run store needs no torch either
    metrics = json.loads((tmp_path / "digits-model.cnnmodel" / "metrics.json").read_text())
    assert metrics["export_check"]["passed"] is True
    assert metrics["export_check"]["max_abs_difference"] < 1e-4
    assert metrics["training"]["best_val_accuracy"] >= 0.8
    image = sorted((data / "2").iterdir())[0]
    classified = run_without_torch(
        "classify", image, "--model", tmp_path / "digits-model.cnnmodel", "--format", "json"
    )
    assert classified.returncode == 0, classified.stderr
    assert json.loads(classified.stdout)["predictions"][0]["label"] == "2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "DATA", "--out", "OUT", "--mode", "full"], "full training needs PyTorch"),
        (["train", "DATA", "--out", "OUT", "--mode", "scratch"], "scratch training needs PyTorch"),
        (["classify", "IMAGE", "--backend", "torch"], "the PyTorch backend needs PyTorch"),
    ],
)
def test_what_needs_torch_is_refused_with_one_line(
    tmp_path: Path, photos, args: list[str], message: str
) -> None:
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=4, classes=range(2))
    values = {"DATA": str(data), "OUT": str(tmp_path / "model"), "IMAGE": str(photos["chelsea"])}
    done = run_without_torch(*[values.get(a, a) for a in args])
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnn-desktop: error: "), done.stderr
    assert message in lines[0] and "has no PyTorch" in lines[0]
    assert not (tmp_path / "model.cnnmodel").exists()
