"""Replacing a bundle is atomic: at every instant the old or the new bundle loads under its
name, a saver killed in the middle of the swap leaves the old one loadable, and the next save
cleans up after it. Saving never touches the process-wide umask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cnn_desktop.core.imaging import files
from cnn_desktop.core.models import bundle as bundle_module
from cnn_desktop.core.models.bundle import BundleError, load_bundle, place_bundle
from tests.core import test_spec_bundle
from tests.core.test_spec_bundle import _leftovers, _save_tiny

tiny_export = test_spec_bundle.tiny_export  # the fixture: a tiny real exported classifier

REPO_ROOT = Path(__file__).resolve().parents[2]

# Saves the bundle at argv[1] again under the name "new" with the two-rename fallback forced,
# and kills itself (SIGKILL: no clean-up runs) right after the first rename.
KILLED_SAVER = """
import dataclasses, os, signal, sys
from cnn_desktop.core.imaging import files
from cnn_desktop.core.models.bundle import load_bundle, save_bundle

old = load_bundle(sys.argv[1])
files.exchange_folders = lambda first, second: False
real_rename = os.rename

def rename_then_die(source, target):
    real_rename(source, target)
    if ".previous-" in os.fspath(target):
        os.kill(os.getpid(), signal.SIGKILL)

os.rename = rename_then_die
save_bundle(sys.argv[1], dataclasses.replace(old.spec, name="new"), old.onnx_path.read_bytes())
print("the saver was not killed")
"""


def _kill_a_saver_between_the_renames(target: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", KILLED_SAVER, str(target)],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr + result.stdout
    assert not target.exists()  # the crash really happened between the two renames
    names = _leftovers(target.parent)
    assert any(".previous-" in name for name in names), names
    assert any(".saving-" in name for name in names), names


def test_a_saver_killed_mid_swap_leaves_the_old_bundle_loadable(
    tmp_path: Path, tiny_export
) -> None:
    target = _save_tiny(tiny_export, tmp_path / "model", name="old").path
    _kill_a_saver_between_the_renames(target)

    recovered = load_bundle(target)

    assert recovered.path == target
    assert recovered.name == "old"
    assert target.is_dir()
    assert load_bundle(target).name == "old"


def test_the_next_save_after_a_killed_saver_restores_and_cleans_up(
    tmp_path: Path, tiny_export
) -> None:
    target = _save_tiny(tiny_export, tmp_path / "model", name="old").path
    _kill_a_saver_between_the_renames(target)

    saved = _save_tiny(tiny_export, tmp_path / "model", name="newer")

    assert saved.path == target
    assert load_bundle(target).name == "newer"
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.cnnmodel"]


def test_a_failed_save_after_a_killed_saver_keeps_the_recovered_bundle(
    tmp_path: Path, tiny_export, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _save_tiny(tiny_export, tmp_path / "model", name="old").path
    _kill_a_saver_between_the_renames(target)

    def no_space(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_module, "_write_file", no_space)
    with pytest.raises(BundleError, match=r"^no space left on device while saving"):
        _save_tiny(tiny_export, tmp_path / "model", name="never")
    assert load_bundle(target).name == "old"
    assert _leftovers(tmp_path) == []


def test_rename_exchange_swaps_two_folders_in_one_step(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "marker").write_text("first")
    (second / "marker").write_text("second")

    assert files.exchange_folders(first, second) is True  # Linux on ext4/tmpfs/overlayfs

    assert (first / "marker").read_text() == "second"
    assert (second / "marker").read_text() == "first"


def test_a_loader_arriving_between_the_two_renames_gets_a_whole_bundle(
    tmp_path: Path, tiny_export, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fallback swap: a loader that finds the name empty waits for the swap, never fails."""
    target = _save_tiny(tiny_export, tmp_path / "model", name="old").path
    monkeypatch.setattr(files, "exchange_folders", lambda first, second: False)
    loader_saw_the_gap = threading.Event()
    real_recover = files.recover_interrupted_replace

    def recover(path: Path):
        loader_saw_the_gap.set()
        return real_recover(path)

    monkeypatch.setattr(files, "recover_interrupted_replace", recover)
    outcome: list[object] = []
    loader = threading.Thread(target=lambda: outcome.append(_load_or_error(target)))
    real_rename = os.rename

    def rename_and_let_the_loader_in(source, destination) -> None:
        real_rename(source, destination)
        if ".previous-" in os.fspath(destination):
            loader.start()
            assert loader_saw_the_gap.wait(timeout=60)

    monkeypatch.setattr(os, "rename", rename_and_let_the_loader_in)
    _save_tiny(tiny_export, tmp_path / "model", name="new")
    loader.join(timeout=60)

    assert [getattr(o, "name", o) for o in outcome] == ["new"]


def _load_or_error(path: Path) -> object:
    try:
        return load_bundle(path)
    except BundleError as exc:
        return f"load failed: {exc}"


@pytest.mark.parametrize("exchange", [True, False], ids=["rename-exchange", "two-renames"])
def test_a_loader_polling_during_repeated_saves_always_gets_a_bundle(
    tmp_path: Path, tiny_export, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    target = _save_tiny(tiny_export, tmp_path / "model", name="v0").path
    if not exchange:
        monkeypatch.setattr(files, "exchange_folders", lambda first, second: False)
    stop = threading.Event()
    seen: list[str] = []
    failures: list[str] = []

    def poll() -> None:
        while not stop.is_set():
            outcome = _load_or_error(target)
            if isinstance(outcome, str):
                failures.append(outcome)
            else:
                seen.append(outcome.name)

    loader = threading.Thread(target=poll)
    loader.start()
    try:
        for version in range(1, 16):
            _save_tiny(tiny_export, tmp_path / "model", name=f"v{version}")
    finally:
        stop.set()
        loader.join(timeout=60)

    assert failures == []
    assert seen and set(seen) <= {f"v{v}" for v in range(16)}
    assert load_bundle(target).name == "v15"
    assert _leftovers(tmp_path) == []


def test_saving_never_changes_the_umask_and_files_get_normal_permissions(
    tmp_path: Path, tiny_export, monkeypatch: pytest.MonkeyPatch
) -> None:
    umask = os.umask(0o022)
    os.umask(umask)

    def forbidden(mask: int) -> int:
        raise AssertionError("os.umask changes the whole process")

    monkeypatch.setattr(os, "umask", forbidden)
    saved = _save_tiny(tiny_export, tmp_path / "model")
    _save_tiny(tiny_export, tmp_path / "model", name="again")  # the replacing path too

    assert saved.path.stat().st_mode & 0o777 == 0o777 & ~umask
    for child in saved.path.iterdir():
        assert child.stat().st_mode & 0o777 == 0o666 & ~umask, child.name


def test_a_checked_bundle_folder_is_moved_into_place_not_written_again(
    tmp_path: Path, tiny_export
) -> None:
    target = _save_tiny(tiny_export, tmp_path / "model", name="old").path
    working = tmp_path / ".model.cnnmodel.checking-test"
    checked = _save_tiny(tiny_export, working / "model", name="new").path
    files_of_the_check = {p.name: p.stat().st_ino for p in checked.iterdir()}

    placed = place_bundle(checked, tmp_path / "model")

    assert placed.path == target and placed.name == "new"
    assert {p.name: p.stat().st_ino for p in target.iterdir()} == files_of_the_check
    assert list(working.iterdir()) == []  # the old bundle, swapped out, is gone too
    assert _leftovers(tmp_path) == []
