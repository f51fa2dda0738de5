"""Crash-safe saves (issue 10 item 7): a saver SIGKILLed at any moment while it replaces a
bundle leaves a name that loads as the complete old bundle or the complete new one, never a
mix; what the crash left beside it is recovered by the next load and tidied by the next save.

A zygote process imports cnn-desktop once and forks one saver per trial, so dozens of kills
take seconds: kills at every step of a save (the saver pauses at step N, the test kills it
there), then at seeded random moments spread over a measured save, with the rename exchange
and with the two-rename fallback. ENOSPC injected into a save: one clear line, the old bundle
byte-identical, nothing left beside it — by ``save_bundle`` and by ``cnn-desktop train``."""

from __future__ import annotations

import dataclasses
import errno
import os
import queue
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cnn_desktop.core.imaging.files import folder_lock, tidy_interrupted_replace
from cnn_desktop.core.models import bundle as bundle_module
from cnn_desktop.core.models.bundle import BundleError, ModelBundle, load_bundle, save_bundle
from tests.cli.test_train_output import tree_digest
from tests.core.test_spec_bundle import CLASSIFIER_SPEC, _classifier_onnx
from tests.datasets import write_digits_dataset
from tests.processes import REPO_ROOT

VERSIONS = ("old", "new")
WEIGHT_VALUES = 250_000  # 1 MB of weights: a save lasts long enough to be hit mid-write
RANDOM_KILLS = 24

ZYGOTE = r"""
import os, signal, sys, time
import numpy as np
from cnn_desktop.core.imaging import files
from cnn_desktop.core.models import bundle
from tests.core.test_crash_safe_save import save_version

target = sys.argv[1]

def say(line):
    os.write(1, (line + "\n").encode())

def instrument(pause_at):
    # Count the save's steps: each write, fsync, folder creation, rename, exchange, unlink and
    # rmdir (of the swap and of rmtree) is one; at step pause_at, stop there for the kill.
    steps = [0]
    def step(label):
        steps[0] += 1
        if steps[0] == pause_at:
            say(f"paused {steps[0]} {label}")
            while True:
                signal.pause()
    def around(module, name):
        real = getattr(module, name)
        def wrapper(*args, **kwargs):
            step(name)
            result = real(*args, **kwargs)
            step(name + " done")
            return result
        setattr(module, name, wrapper)
    for name in ("mkdir", "fsync", "rename", "unlink", "rmdir"):
        around(os, name)
    around(files, "exchange_folders")
    around(bundle, "_write_file")
    return steps

def save(mode, pause_at):
    if mode == "two-renames":
        files.exchange_folders = lambda first, second: False
    current = bundle.load_bundle(target).spec.name
    steps = instrument(pause_at)
    started = time.monotonic()
    save_version(target, "new" if current == "old" else "old")
    say(f"saved {steps[0]} {time.monotonic() - started:.6f}")

say("ready")
for line in sys.stdin:
    command, *args = line.split()
    if command == "save":
        pid = os.fork()
        if pid == 0:
            save(args[0], int(args[1]))
            os._exit(0)
        say(f"pid {pid}")
    elif command == "reap":
        say(f"reaped {os.waitpid(int(args[0]), 0)[1]}")
"""


def version_contents(name: str):
    """(spec, ONNX proto, weights) of the bundle called ``name``: old and new differ in
    every file."""
    scale = 1.0 if name == "old" else 2.0
    proto = _classifier_onnx()
    proto.graph.initializer[0].float_data[:] = [scale * 0.1] * 6
    spec = dataclasses.replace(CLASSIFIER_SPEC, name=name, class_names=(f"{name} x", f"{name} y"))
    weights = {"big": np.full(WEIGHT_VALUES, scale, np.float32)}
    return spec, proto, weights


def save_version(path: Path | str, name: str) -> ModelBundle:
    """Save the bundle called ``name`` at ``path``, with a ``metrics.json`` of its own."""
    spec, proto, weights = version_contents(name)
    return save_bundle(path, spec, proto, weights=weights, extra_json={"metrics.json": [name]})


class Zygote:
    """The forking saver process, and the lines its children say."""

    def __init__(self, target: Path) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, str(target)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.children: set[int] = set()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next("ready") == "ready"

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def next(self, *prefixes: str) -> str:
        """The next line starting with one of ``prefixes`` (others are dropped)."""
        while True:
            line = self.lines.get(timeout=120)
            if line.startswith(prefixes):
                return line

    def send(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def start_save(self, mode: str, pause_at: int = -1) -> int:
        self.send(f"save {mode} {pause_at}")
        pid = int(self.next("pid").split()[1])
        self.children.add(pid)
        return pid

    def reap(self, pid: int) -> int:
        """Wait for the saver ``pid`` to end; its wait status (0, or the signal number)."""
        self.send(f"reap {pid}")
        self.children.discard(pid)
        return int(self.next("reaped").split()[1])

    def close(self) -> None:
        for pid in list(self.children):  # a test that failed midway leaves a paused saver
            os.kill(pid, signal.SIGKILL)
            self.reap(pid)
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def saving(tmp_path: Path):
    """(target, {version: tree digest}, zygote): the old bundle saved at target, and the
    digests of both versions saved elsewhere."""
    references = {}
    for name in VERSIONS:
        references[name] = tree_digest(save_version(tmp_path / "references" / name, name).path)
    assert references["old"].keys() == references["new"].keys()
    assert all(references["old"][f] != references["new"][f] for f in references["old"])
    target = save_version(tmp_path / "models" / "model", "old").path
    zygote = Zygote(target)
    yield target, references, zygote
    zygote.close()


def _check_whole(target: Path, references: dict[str, dict[str, str]]) -> str:
    """Load the target after a kill: the bundle that was there or the one being saved,
    complete (every file byte for byte); returns its name."""
    loaded = load_bundle(target)
    assert loaded.path == target
    name = loaded.spec.name
    assert name in VERSIONS and loaded.spec.class_names == (f"{name} x", f"{name} y")
    assert tree_digest(target) == references[name], f"{name} is not whole after the kill"
    for name in _leftovers(target.parent):  # only what a save makes, for the next to tidy
        assert name.startswith((".model.cnnmodel.saving-", ".model.cnnmodel.previous-")), name
    return name


def test_a_saver_killed_at_every_step_and_at_random_moments_leaves_a_whole_bundle(saving):
    target, references, zygote = saving
    modes = ("rename-exchange", "two-renames")
    steps, durations = {}, []
    for mode in modes:  # a save to the end: how many steps, how long
        for _ in range(2):
            pid = zygote.start_save(mode)
            _, count, seconds = zygote.next("saved").split()
            assert zygote.reap(pid) == 0
            steps[mode] = int(count)
            durations.append(float(seconds))
    _check_whole(target, references)
    kills = 0
    for mode in modes:
        for pause_at in range(1, steps[mode] + 1):
            pid = zygote.start_save(mode, pause_at)
            assert zygote.next("paused", "saved").startswith(f"paused {pause_at} ")
            os.kill(pid, signal.SIGKILL)
            assert zygote.reap(pid) == signal.SIGKILL
            kills += 1
            _check_whole(target, references)
            with folder_lock(target.parent):  # what the next save does first, so that the
                tidy_interrupted_replace(target)  # step numbers keep their meaning
            assert _leftovers(target.parent) == []
    rng = random.Random(10)
    save_s = statistics.median(durations)
    for trial in range(RANDOM_KILLS):
        mode = modes[trial % 2]
        pid = zygote.start_save(mode)
        time.sleep(rng.uniform(0, 1.5 * save_s))  # the kill lands anywhere in the save
        os.kill(pid, signal.SIGKILL)
        status = zygote.reap(pid)
        kills += status == signal.SIGKILL
        _check_whole(target, references)
        if status == 0:  # it finished first: a complete save leaves nothing beside it
            assert _leftovers(target.parent) == []
    print(f"{kills} kills: {steps} steps, then {RANDOM_KILLS} at random in {save_s:.3f} s saves")
    # Every step was killed; of the random kills some may land after a save finished (a loaded
    # machine stretches the sleep more than the save), but not all of them.
    assert kills > sum(steps.values()), kills

    pid = zygote.start_save("rename-exchange")  # the next save tidies every leftover
    zygote.next("saved")
    assert zygote.reap(pid) == 0
    _check_whole(target, references)
    assert _leftovers(target.parent) == []
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.cnnmodel"]


# --------------------------------------------------------------------------- ENOSPC


def _disk_fills_at_write(number: int):
    """A ``_write_file`` whose ``number``-th call writes half its bytes, then finds the
    disk full."""
    real_write = bundle_module._write_file
    calls = []

    def write(path: Path, data: bytes) -> None:
        calls.append(path.name)
        if len(calls) == number:
            real_write(path, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    return write, calls


@pytest.mark.parametrize("number", [1, 2, 3, 4], ids=["onnx", "spec", "weights", "metrics"])
def test_a_full_disk_during_a_save_keeps_the_old_bundle_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: int
) -> None:
    target = save_version(tmp_path / "model", "old").path
    before = tree_digest(target)
    write, calls = _disk_fills_at_write(number)
    monkeypatch.setattr(bundle_module, "_write_file", write)

    with pytest.raises(BundleError) as caught:
        save_version(target, "new")

    assert len(calls) == number
    assert str(caught.value) == (
        f"no space left on device while saving model.cnnmodel; the previous model at {target} "
        "is unchanged"
    )
    assert tree_digest(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.cnnmodel"]


def test_a_full_disk_during_a_first_save_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write, _calls = _disk_fills_at_write(3)
    monkeypatch.setattr(bundle_module, "_write_file", write)
    with pytest.raises(
        BundleError,
        match=r"^no space left on device while saving model\.cnnmodel; nothing was saved$",
    ):
        save_version(tmp_path / "model", "new")
    assert list(tmp_path.iterdir()) == []


# Runs `cnn-desktop train` (argv[2:]) with the disk filling up at the weights of the model.
FULL_DISK_TRAIN = r"""
import errno, os, sys
from cnn_desktop.core.models import bundle
from cnn_desktop.cli.main import main

real_write = bundle._write_file
def write(path, data):
    if path.name == bundle.WEIGHTS_FILE:
        real_write(path, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    real_write(path, data)
bundle._write_file = write
sys.exit(main(["train", *sys.argv[1:]]))
"""


def test_cnn_desktop_train_on_a_full_disk_says_so_and_keeps_the_previous_model(
    tmp_path: Path,
) -> None:
    models = tmp_path / "models"
    previous = save_version(models / "digits", "old").path
    before = tree_digest(previous)
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=6, classes=range(2))
    command = [str(data), "--out", str(models / "digits"), "--mode", "scratch", "--arch"]
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_TRAIN, *command, "lenet5", "--epochs", "1", "--quiet"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        "cnn-desktop: error: no space left on device while saving digits.cnnmodel; the previous "
        f"model at {previous} is unchanged"
    ]
    assert result.stderr.splitlines()[-1] == errors[0]
    assert "Traceback" not in result.stderr
    assert tree_digest(previous) == before
    assert load_bundle(previous).spec.name == "old"
    leftovers = [p.name for p in models.iterdir() if p.name != "digits.cnnmodel"]
    assert [name for name in leftovers if "resume" not in name] == []
