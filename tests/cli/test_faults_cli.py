"""Faults injected into a real ``cnn-desktop`` subprocess: CUDA failing at session creation
(one warning line, the work done on the CPU), and the image folder deleted mid-training (one
error line, exit code 1, the previous model untouched, the best checkpoint kept)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnn_desktop.core.training.loop import load_checkpoint
from cnn_desktop.core.training.placement import checkpoint_path
from tests.fault_injection import CHILD_WITH_BROKEN_CUDA, CUDA_ERROR, write_unique_digits
from tests.processes import run_python

LENET = ["--mode", "scratch", "--arch", "lenet5", "--device", "cpu", "--quiet"]
CUDA_WARNING = (
    f"cnn-desktop: warning: CUDA (ONNX Runtime's CUDA provider) failed ({CUDA_ERROR}); "
    "running on the CPU"
)


@pytest.fixture(scope="module", autouse=True)
def _model_cached(default_bundle) -> None:
    """Build the default model into the shared test cache before any subprocess runs."""


@pytest.mark.parametrize("probe", ["probe-fails", "probe-passes"])
def test_classify_with_cuda_failing_warns_once_and_runs_on_the_cpu(photos, probe: str) -> None:
    done = run_python(
        "-c", CHILD_WITH_BROKEN_CUDA, probe, "classify", photos["chelsea"], "--format", "json"
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [CUDA_WARNING]
    assert '"predictions"' in done.stdout


def test_classify_with_cuda_asked_for_and_failing_is_one_error_line(photos) -> None:
    done = run_python(
        "-c",
        CHILD_WITH_BROKEN_CUDA,
        "probe-passes",
        "classify",
        photos["chelsea"],
        "--device",
        "cuda",
    )

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"cnn-desktop: error: CUDA was asked for but ONNX Runtime cannot use it: {CUDA_ERROR}"
    ]


# A ``cnn-desktop train`` whose data folder (argv[1]) is deleted mid-run: after the first
# epoch's validation (scratch) or after the first batch of embeddings (head).
CHILD_DELETING_THE_DATA = """
import shutil, sys
from cnn_desktop.core.training import embeddings, network

data = sys.argv[1]
evaluate, embed = network.evaluate_loss, embeddings.EmbeddingModel.__call__


def evaluate_then_delete(*args, **kwargs):
    result = evaluate(*args, **kwargs)
    shutil.rmtree(data, ignore_errors=True)
    return result


def embed_then_delete(self, batch):
    shutil.rmtree(data, ignore_errors=True)
    return embed(self, batch)


network.evaluate_loss = evaluate_then_delete
embeddings.EmbeddingModel.__call__ = embed_then_delete
from cnn_desktop.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("mode", ["scratch", "head"])
def test_data_folder_deleted_mid_training_is_one_line_and_exit_1(tmp_path: Path, mode: str):
    previous = tmp_path / "previous.cnnmodel"
    older = write_unique_digits(tmp_path / "older", seed=1)
    made = run_python(
        "-m", "cnn_desktop", "train", older, "--out", previous, *LENET, "--epochs", "1"
    )
    assert made.returncode == 0, made.stderr
    before = files(previous)
    data = write_unique_digits(tmp_path / "data", seed=int.from_bytes(os.urandom(4), "little"))
    options = [*LENET, "--epochs", "4"] if mode == "scratch" else ["--mode", "head", "--quiet"]

    done = run_python(
        "-c", CHILD_DELETING_THE_DATA, data, "train", data, "--out", previous, *options
    )

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    error = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(error) == 1
    assert error[0].startswith(
        f"cnn-desktop: error: the image folder {data} was deleted or moved during training"
    )
    assert files(previous) == before  # the previous model is untouched
    resume = checkpoint_path(previous)
    if mode == "scratch":
        assert f"kept in {resume}" in error[0]
        assert load_checkpoint(resume)["epoch"] == 1
    else:
        assert not resume.exists() and "embeddings computed so far stay cached" in error[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["older", previous.name] + ([resume.name] if mode == "scratch" else [])
    )
