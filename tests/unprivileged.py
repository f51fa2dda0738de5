"""Running a piece of Python as an ordinary user, for the permission checks root would pass.

The tests run as root here and in CI, and root reads and writes anything: a file with mode
0 is no obstacle. :func:`run_unprivileged` runs code as ``nobody`` (through ``setpriv``) so
such a case meets the operating system's real refusal; :func:`shared_folder` makes a folder
that user can reach (pytest's own ``tmp_path`` lies under a folder only root may enter).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
UNPRIVILEGED_USER, UNPRIVILEGED_GROUP = "nobody", "nogroup"


def running_as_root() -> bool:
    """Whether this process is root (on systems that have one)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def unprivileged_prefix() -> list[str]:
    """The command prefix that drops root to ``nobody`` (skips the test where none exists)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv is missing: cannot drop privileges")
    return [
        setpriv,
        f"--reuid={UNPRIVILEGED_USER}",
        f"--regid={UNPRIVILEGED_GROUP}",
        "--clear-groups",
    ]


@contextmanager
def shared_folder() -> Iterator[Path]:
    """A fresh folder every user may enter (mode 0755, removed afterwards)."""
    folder = Path(tempfile.mkdtemp(prefix="cnn-desktop-test-"))
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_unprivileged(
    code: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code args…`` as ``nobody`` with this checkout on ``sys.path``.

    Returns:
        The finished process (text output).
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/nonexistent",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    return subprocess.run(
        [*unprivileged_prefix(), sys.executable, "-c", code, *args],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )
