"""``cnn-desktop sweep`` through the real CLI: every trial a recorded run, the best model kept,
two processes sharing one study through a journal file, and an interrupted sweep keeping what
it finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cnn_desktop.core.models import load_bundle
from tests.processes import REPO_ROOT, run_python


def sweep_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "cnn_desktop", "sweep", str(data), "--out", str(out), "--params", "lr,epochs",
            "--format", "json", *extra]  # fmt: skip


def recorded_runs(env: dict[str, str]) -> list[dict]:
    done = run_python("-m", "cnn_desktop", "runs", "list", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_sweep_records_every_trial_and_keeps_the_best_model(runs_env, digits, tmp_path):
    done = run_python(*sweep_args(digits, tmp_path / "best", "--trials", "4"), env=runs_env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [t["number"] for t in summary["trials"]] == [0, 1, 2, 3]
    assert summary["trials"][0]["params"] == {"lr": 0.003, "epochs": 60}  # the defaults first
    assert all(t["state"] in ("complete", "pruned") for t in summary["trials"])
    best = summary["best"]
    complete = [t["val_accuracy"] for t in summary["trials"] if t["state"] == "complete"]
    assert best["val_accuracy"] == max(complete)
    model = load_bundle(summary["out"])
    metrics = json.loads((model.path / "metrics.json").read_text())
    assert metrics["training"]["best_val_accuracy"] == best["val_accuracy"]
    runs = recorded_runs(runs_env)
    assert sorted(r["tags"]["trial"] for r in runs) == ["0", "1", "2", "3"]
    assert {r["tags"]["sweep"] for r in runs} == {summary["study"]}
    assert [r["id"] for r in runs if r["bundle"] == summary["out"]] == [best["run"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.cnnmodel", "digits", "runs"]
    table = run_python("-m", "cnn_desktop", "runs", "list", env=runs_env).stdout
    assert f"sweep={summary['study']} trial=3" in table


def test_two_processes_share_one_study_through_a_journal_file(runs_env, digits, tmp_path):
    journal = tmp_path / "study.journal"
    args = sweep_args(digits, tmp_path / "best", "--trials", "4", "--storage", str(journal))
    workers = [
        subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            env={**os.environ, **runs_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
    summaries = [json.loads(stdout) for stdout, _ in outputs]
    last = max(summaries, key=lambda s: len(s["trials"]))
    numbers = [t["number"] for t in last["trials"]]
    assert numbers == list(range(len(numbers))) and 4 <= len(numbers) <= 5  # one may overshoot
    runs = recorded_runs(runs_env)
    assert sorted(int(r["tags"]["trial"]) for r in runs) == numbers  # each trial ran once
    best = max((t for t in last["trials"] if t["state"] == "complete"),
               key=lambda t: (t["val_accuracy"], -t["number"]))  # fmt: skip
    kept = json.loads((tmp_path / "best.cnnmodel" / "metrics.json").read_text())
    assert kept["training"]["best_val_accuracy"] == best["val_accuracy"]


def test_an_interrupted_sweep_keeps_its_finished_trials_and_best_model(runs_env, digits, tmp_path):
    worker = subprocess.Popen(
        [sys.executable, *sweep_args(digits, tmp_path / "best", "--trials", "20")],
        cwd=REPO_ROOT, env={**os.environ, **runs_env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for line in worker.stderr:
        if line.startswith("trial 2: started"):
            worker.send_signal(signal.SIGINT)
            break
    stdout, _ = worker.communicate(timeout=300)
    assert worker.returncode == 130
    summary = json.loads(stdout)
    assert summary["interrupted"] is True
    finished = [t for t in summary["trials"] if t["state"] in ("complete", "pruned")]
    assert [t["number"] for t in finished] == [0, 1]
    assert load_bundle(tmp_path / "best.cnnmodel").path.is_dir()
    assert not list(tmp_path.glob(".best.cnnmodel.sweep*"))  # no trial left half-placed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trials", "3", "--params", "lr,colour"], "cannot sweep colour (choose from lr, "),
        (["--trials", "0"], "--trials must be at least 1"),
        (["--trials", "2", "--storage", "/nowhere/at/all/j.log"], "journal file's folder"),
    ],
)
def test_bad_sweep_options_are_one_clear_line(runs_env, digits, tmp_path, extra, message):
    args = ["-m", "cnn_desktop", "sweep", str(digits), "--out", str(tmp_path / "b"), *extra]
    done = run_python(*args, env=runs_env)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("cnn-desktop: error: ") and message in line
    assert recorded_runs(runs_env) == []
