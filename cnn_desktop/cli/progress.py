"""Progress on stderr: a tqdm bar on a terminal, a plain line every few seconds otherwise.

A bar redraws itself with carriage returns, which fill a log file or a CI console with
hundreds of overwritten lines; when stderr is not a terminal, progress is one ordinary line
every :data:`LINE_INTERVAL_S` seconds and a last one at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

LINE_INTERVAL_S = 5.0
"""Seconds between progress lines when stderr is not a terminal."""


def progress_bar(*, total: int | None, desc: str, unit: str = "", **tqdm_options: Any) -> Any:
    """A progress bar on stderr: tqdm on a terminal, :class:`LineProgress` otherwise.

    ``total`` may be None while it is unknown (a folder still being walked): the bar counts
    up, and shows a fraction once ``bar.total`` is set.
    """
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit or "it", file=sys.stderr, **tqdm_options)
    return LineProgress(total=total, desc=desc, unit=unit)


class LineProgress:
    """The part of tqdm's interface the CLI uses, printing whole lines, never ``\\r``."""

    def __init__(self, *, total: int | None, desc: str, unit: str = "") -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self.postfix = ""
        self._last_line = time.monotonic()
        self._last_text = ""

    def update(self, count: int = 1) -> None:
        """Advance by ``count`` and print a line if the interval has passed."""
        self.n += count
        self.refresh()

    def set_description(self, desc: str) -> None:
        """Change the label in front of the count."""
        self.desc = desc

    def set_postfix_str(self, postfix: str) -> None:
        """Change the text after the count."""
        self.postfix = postfix

    def refresh(self) -> None:
        """Print the current state if :data:`LINE_INTERVAL_S` has passed since the last line."""
        if time.monotonic() - self._last_line >= LINE_INTERVAL_S:
            self._print()

    def write(self, line: str, file: TextIO | None = None) -> None:
        """Print a message line (as ``tqdm.write`` does)."""
        print(line, file=file or sys.stderr, flush=True)

    def close(self) -> None:
        """Print the final state (once)."""
        self._print()

    def _print(self) -> None:
        if self.total is None:
            count = f"{self.n} {self.unit}".rstrip()
        elif self.unit:
            count = f"{self.n}/{self.total} {self.unit}"
        else:
            count = f"{round(100 * self.n / max(self.total, 1))}%"
        text = f"{self.desc}: {count}" + (f", {self.postfix}" if self.postfix else "")
        self._last_line = time.monotonic()
        if text != self._last_text:
            self._last_text = text
            print(text, file=sys.stderr, flush=True)


class FractionBar:
    """A core ``progress(fraction, message)`` callback drawing a bar on stderr, shown from the
    first report on (so that an early error stays alone on its line)."""

    def __init__(self, desc: str, *, quiet: bool = False) -> None:
        self.desc, self.quiet, self.bar = desc, quiet, None

    def __call__(self, fraction: float, message: str) -> None:
        if self.quiet:
            return
        if self.bar is None:
            self.bar = progress_bar(
                total=1000, desc=self.desc, bar_format="{l_bar}{bar}| {postfix}"
            )
        self.bar.n = round(fraction * 1000)
        self.bar.set_postfix_str(message)
        self.bar.refresh()

    def close(self) -> None:
        """End the bar (its last state stays visible)."""
        if self.bar is not None:
            self.bar.close()
