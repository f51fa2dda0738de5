"""Small file helpers shared by the core: content digests and atomic writes."""

from __future__ import annotations

import hashlib
import os
import tempfile
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
