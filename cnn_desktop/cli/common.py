"""What every subcommand shares: exit codes and the one-line error."""

from __future__ import annotations

import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def fail(message: str, code: int) -> int:
    """Print ``cnn-desktop: error: MESSAGE`` on stderr and return the exit code ``code``."""
    print(f"cnn-desktop: error: {message}", file=sys.stderr)
    return code
