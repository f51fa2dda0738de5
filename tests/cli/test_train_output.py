"""Where `cnn-desktop train --out` puts the model, run for real in a subprocess: an existing
model is replaced only by a finished run whose export check passed; Ctrl-C keeps it
byte-identical and says where the best model so far went; an output that cannot be written
is refused in one line before any work (as an unprivileged user too: the tests run as root)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cnn_desktop.core.models.bundle import load_bundle
from cnn_desktop.core.training.placement import checkpoint_path
from tests.datasets import write_digits_dataset
from tests.unprivileged import running_as_root, shared_folder, unprivileged_prefix

COMMAND = [sys.executable, "-m", "cnn_desktop", "train"]
LENET = ["--mode", "scratch", "--arch", "lenet5", "--quiet"]
# One image per step: an epoch of the cancel data set lasts well under a second but long
# enough, with early stopping after 6 epochs without progress at the earliest, for the Ctrl-C
# sent on the first epoch line to land while the run is still going.
SLOW_EPOCHS = [*LENET, "--batch-size", "1", "--epochs", "500"]


def train_cli(*args: str | Path, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*(prefix or []), *COMMAND, *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=600,
    )


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (links followed) → the SHA-256 of its bytes."""
    digests = {}
    for root, _dirs, files in os.walk(folder, followlinks=True):
        for name in files:
            path = Path(root) / name
            digests[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def leftovers(folder: Path) -> list[str]:
    """Working or probe folders a run must not leave behind."""
    return [p.name for p in folder.iterdir() if "checking" in p.name or "write-test" in p.name]


@pytest.fixture(scope="module")
def previous_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real trained model of the digits 3 and 4 (the classes tell it from a newer one)."""
    folder = tmp_path_factory.mktemp("previous")
    write_digits_dataset(folder / "older", per_class=12, classes=(3, 4))
    done = train_cli(folder / "older", "--out", folder / "previous", *LENET, "--epochs", "2")
    assert done.returncode == 0, done.stderr
    return folder / "previous.cnnmodel"


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits 0, 1 and 2, 100 images each."""
    folder = tmp_path_factory.mktemp("digits") / "digits"
    write_digits_dataset(folder, per_class=100, classes=range(3))
    return folder


@pytest.fixture
def existing(previous_model: Path, tmp_path: Path) -> Path:
    """A copy of the previous model at ``tmp_path/model.cnnmodel``."""
    target = tmp_path / "models" / "model.cnnmodel"
    shutil.copytree(previous_model, target, symlinks=True)
    return target


def test_ctrl_c_after_an_epoch_keeps_the_existing_model_and_resume_then_replaces_it(
    digits: Path, existing: Path
) -> None:
    before = tree_digest(existing)
    process = subprocess.Popen(
        [*COMMAND, str(digits), "--out", str(existing), *SLOW_EPOCHS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    watchdog = threading.Timer(300, process.kill)  # a hung run fails the test, never the suite
    watchdog.start()
    try:
        seen = []
        for line in process.stderr:  # wait on the output for the first epoch to end
            seen.append(line)
            if line.startswith("epoch 1/"):
                process.send_signal(signal.SIGINT)
                break
        stdout, rest = process.communicate(timeout=300)
    finally:
        watchdog.cancel()
    stderr = "".join(seen) + rest
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    saved = Path(stdout.strip().splitlines()[-1])
    assert re.fullmatch(r"model\.cancelled-\d{8}-\d{6}\.cnnmodel", saved.name), saved
    assert saved.parent == existing.parent
    assert (
        f"Kept the previous model at {existing}; the new one is at {saved} because the run "
        "was cancelled" in stderr
    )
    assert "--resume" in stderr
    assert load_bundle(saved).spec.class_names == ("0", "1", "2")  # the best epoch so far
    assert tree_digest(existing) == before  # byte-identical
    assert load_bundle(existing).spec.class_names == ("3", "4")
    assert checkpoint_path(existing).exists()
    assert not leftovers(existing.parent)

    resume = ["--batch-size", "1", "--epochs", "3", "--resume"]
    resumed = train_cli(digits, "--out", existing, *LENET, *resume)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resumed after epoch" in resumed.stderr
    assert f"Replaced the previous model at {existing}." in resumed.stderr
    assert Path(resumed.stdout.strip().splitlines()[-1]) == existing
    assert load_bundle(existing).spec.class_names == ("0", "1", "2")
    assert not checkpoint_path(existing).exists()  # a finished run leaves no checkpoint
    assert load_bundle(saved).spec.class_names == ("0", "1", "2")  # the kept copy stays


def test_a_finished_verified_run_replaces_the_existing_model_and_says_so(
    tmp_path: Path, existing: Path
) -> None:
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=12, classes=range(3))
    done = train_cli(data, "--out", existing, *LENET, "--epochs", "2")
    assert done.returncode == 0, done.stderr
    assert "ONNX export verified" in done.stderr
    assert f"Replaced the previous model at {existing}." in done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(existing)
    assert load_bundle(existing).spec.class_names == ("0", "1", "2")
    assert not leftovers(existing.parent) and not checkpoint_path(existing).exists()


def test_a_new_model_name_is_simply_saved(tmp_path: Path) -> None:
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=12, classes=range(2))
    done = train_cli(data, "--out", tmp_path / "fresh", *LENET, "--epochs", "1")
    assert done.returncode == 0, done.stderr
    assert f"Saved {tmp_path / 'fresh.cnnmodel'}." in done.stderr
    assert "previous model" not in done.stderr
    assert load_bundle(tmp_path / "fresh.cnnmodel").spec.num_classes == 2


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("small") / "digits"
    write_digits_dataset(folder, per_class=6, classes=range(2))
    return folder


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The single ``cnn-desktop: error:`` line of a run refused before any work."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and not done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no scan report, no epoch: nothing was started
    assert lines[0].startswith("cnn-desktop: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("parent is a file", "notes.txt is a file"),
        ("out is a file", "exists and is not a model bundle folder"),
        ("parent missing", "the folder does not exist"),
        ("a folder that is not a model", "is not a usable model bundle"),
    ],
)
def test_an_unusable_output_is_refused_before_any_work(
    case: str, expected: str, small_digits: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a folder\n", encoding="utf-8")
    taken = tmp_path / "taken.cnnmodel"
    taken.write_text("a file\n", encoding="utf-8")
    holiday = tmp_path / "holiday.cnnmodel"
    holiday.mkdir()
    (holiday / "photo.txt").write_text("someone's files\n", encoding="utf-8")
    out = {
        "parent is a file": notes / "model",
        "out is a file": taken,
        "parent missing": tmp_path / "missing" / "model",
        "a folder that is not a model": tmp_path / "holiday",
    }[case]
    line = one_error_line(train_cli(small_digits, "--out", out, *LENET, "--epochs", "1"))
    assert expected in line
    assert notes.read_text(encoding="utf-8") == "not a folder\n"
    assert taken.read_text(encoding="utf-8") == "a file\n"
    assert [p.name for p in holiday.iterdir()] == ["photo.txt"]
    assert not (tmp_path / "missing").exists()


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work() -> None:
    # As root every permission check passes, so this runs as `nobody` (who can read the
    # virtualenv and the checkout, but not write here); as any other user, as that user.
    with shared_folder() as folder:
        _refused_as_unprivileged(folder, unprivileged_prefix() if running_as_root() else [])


def _refused_as_unprivileged(shared: Path, prefix: list[str]) -> None:
    data = shared / "digits"
    write_digits_dataset(data, per_class=6, classes=range(2))
    for root, dirs, files in os.walk(data):
        for name in dirs:
            (Path(root) / name).chmod(0o755)
        for name in files:
            (Path(root) / name).chmod(0o644)
    locked = shared / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    done = train_cli(data, "--out", locked / "model", *LENET, "--epochs", "1", prefix=prefix)
    line = one_error_line(done)
    assert f"cannot write the model to {locked}" in line
    assert "Permission denied" in line  # really refused by the system, not by root's luck
    assert list(locked.iterdir()) == []
