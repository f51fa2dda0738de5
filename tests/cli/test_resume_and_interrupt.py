"""Ctrl-C and ``--resume`` of ``cnn-desktop train``, for real: the CLI runs in a subprocess,
gets SIGINT once its first epoch line appears (read from its output, no sleep), and is then
run again with ``--resume``. README: "Ctrl-C … stops at the next step and saves the best
model so far; ``--resume`` continues an interrupted run"."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnn_desktop.core.models.bundle import BUNDLE_SUFFIX, load_bundle
from tests.datasets import write_digits_dataset
from tests.processes import REPO_ROOT, run_python

EPOCHS = 6  # below the scratch mode's patience of 6 stale epochs: no early stop
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+): ")


@dataclass
class Interrupted:
    """What an interrupted ``train`` left behind."""

    data: Path
    out: Path
    returncode: int
    stdout: str
    stderr: str
    epochs_seen: list[int]


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    # Batches of 4: 18 steps an epoch, so the run is far from done when SIGINT arrives.
    return [
        "-m", "cnn_desktop", "train", str(data), "--out", str(out), "--mode", "scratch",
        "--arch", "lenet5", "--epochs", str(EPOCHS), "--batch-size", "4", "--seed", "4",
        "--quiet", *extra,
    ]  # fmt: skip


def epochs_in(stderr: str) -> list[int]:
    return [int(m.group(1)) for line in stderr.splitlines() if (m := EPOCH_LINE.match(line))]


def saved_bundle(stdout: str, search_under: Path) -> Path:
    """The model the CLI says it saved (its last stdout line), else any bundle written."""
    named = [Path(line) for line in stdout.splitlines() if line.endswith(BUNDLE_SUFFIX)]
    if named:
        return named[-1]
    found = sorted(search_under.rglob(f"*{BUNDLE_SUFFIX}"))
    assert found, f"no model was saved under {search_under}; stdout: {stdout!r}"
    return found[0]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Interrupted:
    """A run that got SIGINT (Ctrl-C) right after its first epoch line."""
    folder = tmp_path_factory.mktemp("interrupt")
    data = folder / "digits"
    write_digits_dataset(data, per_class=30, classes=range(3))
    out = folder / "model"
    process = subprocess.Popen(
        [sys.executable, *train_args(data, out)],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    assert process.stderr is not None
    before: list[str] = []
    for line in process.stderr:  # blocks until the child writes a line
        before.append(line)
        if EPOCH_LINE.match(line):
            process.send_signal(signal.SIGINT)
            break
    else:
        process.wait(timeout=60)
        pytest.fail("the run ended without an epoch line:\n" + "".join(before))
    stdout, rest = process.communicate(timeout=300)
    stderr = "".join(before) + rest
    return Interrupted(data, out, process.returncode, stdout, stderr, epochs_in(stderr))


def test_ctrl_c_exits_130_and_keeps_the_best_model_so_far(interrupted: Interrupted) -> None:
    assert interrupted.returncode == 130, interrupted.stderr[-3000:]
    assert "Traceback" not in interrupted.stderr
    assert "best model so far" in interrupted.stderr
    assert interrupted.epochs_seen and interrupted.epochs_seen[-1] < EPOCHS, "it stopped early"
    bundle = load_bundle(saved_bundle(interrupted.stdout, interrupted.out.parent))
    assert bundle.spec.class_names == ("0", "1", "2")
    history = json.loads((bundle.path / "history.json").read_text(encoding="utf-8"))
    assert [record["epoch"] for record in history] == interrupted.epochs_seen


def test_resume_continues_the_interrupted_run_to_the_same_number_of_epochs(
    interrupted: Interrupted,
) -> None:
    done = run_python(*train_args(interrupted.data, interrupted.out, "--resume"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    last_before = interrupted.epochs_seen[-1]
    assert f"Resumed after epoch {last_before}" in done.stderr
    assert epochs_in(done.stderr) == list(range(last_before + 1, EPOCHS + 1)), "continued"
    bundle = load_bundle(saved_bundle(done.stdout, interrupted.out.parent))
    history = json.loads((bundle.path / "history.json").read_text(encoding="utf-8"))
    assert [record["epoch"] for record in history] == list(range(1, EPOCHS + 1))
    metrics = json.loads((bundle.path / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["training"]["epochs_run"] == EPOCHS
    assert metrics["export_check"]["passed"]
