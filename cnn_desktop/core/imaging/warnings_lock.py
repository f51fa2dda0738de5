"""The one lock around every temporary change cnn-desktop makes to the warning filters.

``warnings.catch_warnings`` saves the process-wide filter list on entry and puts it back on
exit. Two threads doing that at once restore each other's lists: a filter meant for one block
can stay installed for good, or vanish while the other block still needs it. Every such block
in the core goes through :func:`ignoring_warnings`, so they never interleave. Keep the blocks
short: a thread waiting here (an image decode waiting for an ONNX export, say) waits for
the whole block.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

WARNINGS_LOCK = threading.RLock()
"""Held while the warning filters are temporarily changed (re-entrant within one thread)."""


@contextmanager
def ignoring_warnings(*categories: type[Warning]) -> Iterator[None]:
    """Ignore warnings of ``categories`` (every warning when none is given) inside the block,
    holding :data:`WARNINGS_LOCK` throughout."""
    with WARNINGS_LOCK, warnings.catch_warnings():
        for category in categories or (Warning,):
            warnings.simplefilter("ignore", category)
        yield
