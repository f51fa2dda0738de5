"""What every subcommand shares: exit codes, the one-line error and the warning line."""

from __future__ import annotations

import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def fail(message: str, code: int) -> int:
    """Print ``cnn-desktop: error: MESSAGE`` on stderr and return the exit code ``code``."""
    print(f"cnn-desktop: error: {message}", file=sys.stderr)
    return code


def warning_line(message: str) -> str:
    """``cnn-desktop: warning: MESSAGE``: how a notice (the work goes on, differently than
    asked, e.g. on the CPU because CUDA failed) is printed on stderr."""
    return f"cnn-desktop: warning: {message}"
