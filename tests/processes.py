"""Running this checkout's Python in a child process, as the CLI and start-up tests do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_python(
    *args: str | os.PathLike,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` from the repository root and wait for it.

    Args:
        args: What follows the interpreter, e.g. ``"-m", "cnn_desktop", "classify", …``.
        env: Variables set on top of this process's environment (the shared model cache).
        timeout: Seconds before the child is killed and the test fails.

    Returns:
        The finished process, its output decoded as UTF-8.
    """
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )
