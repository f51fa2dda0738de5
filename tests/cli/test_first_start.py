"""The first start with a cache that cannot be written: the built-in model is prepared in a
private temporary folder instead, with a warning, and classification works.

The tests run as root, and root ignores file permissions (CAP_DAC_OVERRIDE). The brief's
``setpriv --reuid=nobody`` cannot work here: the virtualenv's interpreter lives under /root,
which is 0700, so ``nobody`` cannot even start Python. Instead the subprocess keeps uid 0 but
runs without the capabilities that bypass permissions (``setpriv --bounding-set
-dac_override,-dac_read_search,...``): the kernel then applies the folder's mode bits to it
like to any user, which the test checks first. Not running as root, nothing needs dropping.
A second case makes the cache path a regular file, which fails for root too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli import run_cli

DROPPED = "-dac_override,-dac_read_search,-fowner"


def _unprivileged_prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root needs util-linux's setpriv to drop CAP_DAC_OVERRIDE"
    return [setpriv, f"--bounding-set={DROPPED}", f"--inh-caps={DROPPED}"]


@pytest.fixture
def isolated(tmp_path: Path) -> dict[str, str]:
    """A fresh temporary folder (where the stand-in cache goes) and an image to classify."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    return {"TMPDIR": str(temp)}


def _classify_twice(photo: Path, env: dict[str, str], prefix: list[str]) -> list[str]:
    """stderr of two runs; both must classify the photo."""
    outputs = []
    for _ in range(2):
        result = run_cli(
            "classify", photo, "--format", "json", "--quiet", env=env, prefix=prefix, timeout=300
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert '"predictions"' in result.stdout
        outputs.append(result.stderr)
    return outputs


def test_read_only_cache_on_first_start_still_classifies(
    tmp_path: Path, photos: dict[str, Path], isolated: dict[str, str]
) -> None:
    cache = tmp_path / "read-only-cache"
    cache.mkdir(mode=0o555)
    cache.chmod(0o555)
    prefix = _unprivileged_prefix()
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", f"open({str(cache / 'probe')!r}, 'w')"],
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0 and "Permission denied" in probe.stderr  # the premise holds

    env = {**isolated, "CNN_DESKTOP_CACHE_DIR": str(cache)}
    first, second = _classify_twice(photos["chelsea"], env, prefix)

    assert f"the cache folder {cache / 'models'} cannot be written" in first
    assert "Permission denied" in first
    assert "Preparing the default model" in first
    assert "Preparing the default model" not in second  # the stand-in is reused
    assert list(cache.iterdir()) == []
    stand_in = Path(isolated["TMPDIR"]) / f"cnn-desktop-{os.geteuid()}" / "models"
    assert any(p.suffix == ".cnnmodel" for p in stand_in.iterdir())


def test_cache_path_that_is_a_file_still_classifies(
    tmp_path: Path, photos: dict[str, Path], isolated: dict[str, str]
) -> None:
    cache = tmp_path / "cache-is-a-file"
    cache.write_text("not a folder")
    env = {**isolated, "CNN_DESKTOP_CACHE_DIR": str(cache)}

    first, _ = _classify_twice(photos["chelsea"], env, [])

    assert f"the cache folder {cache / 'models'} cannot be written" in first
    assert cache.read_text() == "not a folder"
