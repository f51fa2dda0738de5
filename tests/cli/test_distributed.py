"""Data-parallel training under the real ``torchrun`` (``python -m torch.distributed.run``):
two CPU processes on gloo train LeNet-5 on 24 real handwritten digits. Rank 0 alone prints
and saves one bundle that records ``world_size`` 2 and classifies; every rank sees the same
all-reduced epoch figures and stops at the same epoch; head mode is refused in one line; a
rank that dies ends the run without a hang and leaves the previous model as it was."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cnn_desktop.core.training import Launch, TrainConfig, TrainError, check_distributed, launched
from tests.cli.test_train_output import tree_digest
from tests.fault_injection import write_unique_digits

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
LENET = ["--mode", "scratch", "--arch", "lenet5", "--device", "cpu"]
# Two processes on two cores: one thread each; a dead peer ends a collective within a minute.
ENV = {"OMP_NUM_THREADS": "1", "CNN_DESKTOP_DDP_TIMEOUT_MIN": "1"}

# A ``cnn-desktop train`` under torchrun (argv[1]: a folder for the records) that writes every
# epoch event it sees to ``epochs-rank<RANK>.json``, with early stopping after one epoch
# without progress (argv[2]: ``die`` makes rank 1 exit in the middle of epoch 2).
CHILD_RECORDING_EPOCHS = """
import json, os, sys
from pathlib import Path

import cnn_desktop.core.training as training
from cnn_desktop.core.training.config import DEFAULTS

DEFAULTS["scratch"]["patience"] = 1
records, behaviour = Path(sys.argv[1]), sys.argv[2]
rank = os.environ["RANK"]
train = training.train


def recording_train(*args, **kwargs):
    seen = []
    for event in train(*args, **kwargs):
        if event.kind == "epoch":
            seen.append([event.epoch, event.loss, event.accuracy, event.val_loss,
                         event.val_accuracy, event.message])
            (records / f"epochs-rank{rank}.json").write_text(json.dumps(seen))
        if behaviour == "die" and rank == "1" and event.kind == "step" and event.epoch == 2:
            os._exit(3)
        yield event


training.train = recording_train
from cnn_desktop.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


def torchrun(
    *args: str | Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TORCHRUN, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV, **(env or {})},
        timeout=timeout,
    )


def run_cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnn_desktop", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV, **(env or {})},
        timeout=300,
    )


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits 0 and 1, 12 real handwritten images each."""
    return write_unique_digits(tmp_path_factory.mktemp("ddp") / "digits", seed=5)


@pytest.fixture(scope="module")
def two_process_run(digits: Path, tmp_path_factory: pytest.TempPathFactory):
    """``torchrun --nproc-per-node 2 -m cnn_desktop train`` for 2 epochs; its output folder
    and its run store's environment."""
    out = tmp_path_factory.mktemp("ddp-out")
    runs = {"CNN_DESKTOP_RUNS_DIR": str(tmp_path_factory.mktemp("ddp-runs"))}
    options = [*LENET, "--epochs", "2", "--out", out / "digits.cnnmodel"]
    done = torchrun("-m", "cnn_desktop", "train", digits, *options, env=runs)
    return done, out, runs


def test_torchrun_with_two_processes_saves_one_bundle_and_prints_once(two_process_run, digits):
    done, out, _ = two_process_run

    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["digits.cnnmodel"]  # no checkpoint left
    bundle = out / "digits.cnnmodel"
    assert done.stdout.splitlines().count(str(bundle)) == 1  # rank 0 alone reports
    lines = done.stderr.splitlines()
    assert sum(line.startswith("epoch 1/2:") for line in lines) == 1, done.stderr
    assert sum(line.startswith("epoch 2/2:") for line in lines) == 1, done.stderr
    assert sum("on cpu × 2 processes" in line for line in lines) == 1, done.stderr
    assert sum(line.startswith("ONNX export verified") for line in lines) == 1, done.stderr
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["training"]["epochs_run"] == 2
    assert metrics["export_check"]["passed"] is True

    image = sorted((digits / "1").glob("*.png"))[0]
    classified = run_cli("classify", image, "--model", bundle, "--format", "json")
    assert classified.returncode == 0, classified.stderr
    assert json.loads(classified.stdout)["predictions"][0]["label"] in ("0", "1")


def test_rank_0_alone_records_the_run_with_its_world_size(two_process_run) -> None:
    done, _, runs = two_process_run

    assert sum(line.startswith("Recorded as run ") for line in done.stderr.splitlines()) == 1
    listed = run_cli("runs", "list", "--format", "json", env=runs)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["status"] == "finished"
    shown = run_cli("runs", "show", row["id"], "--format", "json", env=runs)
    assert json.loads(shown.stdout)["world_size"] == 2


def test_a_single_process_run_records_world_size_1(digits: Path, tmp_path: Path) -> None:
    done = run_cli("train", digits, *LENET, "--epochs", "1", "--quiet", "--out", tmp_path / "m")

    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "m.cnnmodel" / "metrics.json").read_text())["world_size"] == 1


def test_every_rank_sees_the_same_epochs_and_stops_at_the_same_one(digits, tmp_path) -> None:
    child = tmp_path / "child.py"
    child.write_text(CHILD_RECORDING_EPOCHS)
    bundle = tmp_path / "digits.cnnmodel"

    options = [*LENET, "--epochs", "8", "--quiet", "--out", bundle]

    done = torchrun(child, tmp_path, "live", "train", digits, *options)

    assert done.returncode == 0, done.stderr
    rank0 = json.loads((tmp_path / "epochs-rank0.json").read_text())
    rank1 = json.loads((tmp_path / "epochs-rank1.json").read_text())
    # All-reduced sums: both ranks have the whole validation split's loss and accuracy,
    # not those of their own half, hence the same best epoch and the same early stop.
    assert rank1 == rank0
    assert len(rank0) < 8  # early stopping (patience 1) ended the run
    history = json.loads((bundle / "history.json").read_text())
    assert [[r["epoch"], r["val_loss"], r["val_accuracy"]] for r in history] == [
        [e[0], e[3], e[4]] for e in rank0
    ]


def test_head_mode_under_torchrun_is_refused_in_one_line(digits: Path, tmp_path: Path) -> None:
    # The variables torchrun sets; the refusal comes before any process group is joined.
    launched = {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "0"}
    out = tmp_path / "head.cnnmodel"

    rank0 = run_cli("train", digits, "--mode", "head", "--out", out, env={**launched, "RANK": "0"})
    rank1 = run_cli("train", digits, "--mode", "head", "--out", out, env={**launched, "RANK": "1"})

    assert rank0.returncode == 2
    assert rank0.stderr.splitlines() == [
        "cnn-desktop: error: head mode does not run under torchrun: it needs no DDP (its work "
        "is embedding the images once, which sweeps and batch inference already spread); run "
        "it as one process, or use --mode full or scratch with torchrun"
    ]
    assert (rank1.returncode, rank1.stderr, rank1.stdout) == (2, "", "")
    assert not out.exists()


@pytest.fixture
def previous(two_process_run, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the two-process run's model at ``tmp_path/digits.cnnmodel``, and its digest."""
    bundle = tmp_path / "digits.cnnmodel"
    shutil.copytree(two_process_run[1] / "digits.cnnmodel", bundle)
    return bundle, tree_digest(bundle)


def test_a_rank_dying_mid_run_ends_it_and_keeps_the_previous_model(
    previous, digits: Path, tmp_path: Path
) -> None:
    previous, before = previous
    child = tmp_path / "child.py"
    child.write_text(CHILD_RECORDING_EPOCHS)
    options = [*LENET, "--epochs", "4", "--batch-size", "2", "--quiet", "--out", previous]

    done = torchrun(child, tmp_path, "die", "train", digits, *options, timeout=200)

    assert done.returncode != 0
    assert tree_digest(previous) == before
    assert sorted(p.name for p in tmp_path.iterdir() if "checking" in p.name) == []
    # Rank 0 had saved its checkpoint after epoch 1: the run can continue with --resume.
    assert (tmp_path / ".digits.cnnmodel.resume.pt").exists()


def test_ctrl_c_stops_every_rank_keeps_the_previous_model_and_resume_continues(
    previous, digits: Path, tmp_path: Path
) -> None:
    previous, before = previous
    # One image per step and 500 epochs: still running when Ctrl-C comes after epoch 1.
    slow = [*LENET, "--quiet", "--batch-size", "1", "--epochs", "500", "--out", previous]
    run = subprocess.Popen(
        [*TORCHRUN, "-m", "cnn_desktop", "train", str(digits), *map(str, slow)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **ENV},
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches
    )
    seen = []
    for line in run.stderr:
        seen.append(line)
        if line.startswith("epoch 1/500:"):
            os.killpg(run.pid, signal.SIGINT)
            break
    seen += run.stderr.read().splitlines(keepends=True)
    run.wait(timeout=120)

    assert run.returncode != 0
    assert [line for line in seen if line.startswith("cnn-desktop: error:")] == [
        "cnn-desktop: error: interrupted; a model already at --out is unchanged, and the "
        "checkpoint of the last finished epoch (if any) continues with --resume\n"
    ]
    assert tree_digest(previous) == before
    resumed = torchrun(
        "-m", "cnn_desktop", "train", digits, *LENET, "--batch-size", "1", "--epochs", "2",
        "--resume", "--out", previous,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("Resumed after epoch 1") == 1
    assert resumed.stderr.count("epoch 2/2:") == 1
    assert not (tmp_path / ".digits.cnnmodel.resume.pt").exists()


def test_the_torchrun_variables_are_read_and_checked() -> None:
    two = {"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "RANK": "3", "LOCAL_RANK": "1"}

    assert launched({}) is None  # an ordinary run: the single-process path
    assert launched(two) == Launch(rank=3, local_rank=1, world_size=4, local_world_size=2)
    assert not launched(two).is_main
    for bad in (
        {"WORLD_SIZE": "two"},
        {"WORLD_SIZE": "2", "RANK": "2"},
        {**two, "LOCAL_RANK": "2"},
    ):
        with pytest.raises(TrainError):
            launched(bad)
    with pytest.raises(TrainError, match="--balance sampler"):
        check_distributed(TrainConfig(mode="scratch", arch="lenet5", balance="sampler").resolved())
    check_distributed(TrainConfig(mode="scratch", arch="lenet5").resolved())  # no error
