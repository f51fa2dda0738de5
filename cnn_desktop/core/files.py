"""Small file helpers shared by the core: content digests, atomic writes, cache pruning."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_BLOCK = 1 << 20


def file_digest(path: str | os.PathLike[str]) -> bytes:
    """Content hash of a file (BLAKE2b, 128 bits), read in 1 MiB blocks.

    Raises:
        OSError: The file cannot be read.
    """
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.digest()


@contextmanager
def atomic_write(path: Path, mode: str = "wb", **open_args: Any) -> Iterator[IO[Any]]:
    """Write ``path`` through a temporary file in the same folder, renamed into place only
    when the block completes: a crash or an error never leaves half a file, and the previous
    file stays until the new one is whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode, **open_args) as stream:
            yield stream
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def prune_folder(
    folder: str | os.PathLike[str],
    *,
    max_bytes: int | None = None,
    max_age_s: float | None = None,
    pattern: str = "*",
    now: float | None = None,
) -> list[Path]:
    """Delete the files of ``folder`` matching ``pattern`` that are older than ``max_age_s``
    (by modification time), then the oldest until the rest fit in ``max_bytes``.

    Returns:
        The files deleted, oldest first. Files that vanish or cannot be deleted meanwhile
        are skipped (and still counted if they stay).
    """
    entries = []
    for path in Path(folder).glob(pattern):
        try:
            info = path.stat()
        except OSError:
            continue
        if path.is_file():
            entries.append((info.st_mtime, info.st_size, path))
    entries.sort(key=lambda entry: (entry[0], str(entry[2])))
    total = sum(size for _, size, _ in entries)
    cutoff = None if max_age_s is None else (time.time() if now is None else now) - max_age_s
    deleted = []
    for mtime, size, path in entries:
        too_old = cutoff is not None and mtime < cutoff
        too_big = max_bytes is not None and total > max_bytes
        if not (too_old or too_big):
            break  # every later file is newer, and the total only shrinks
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue
        total -= size
        deleted.append(path)
    return deleted
