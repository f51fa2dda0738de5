"""Small file helpers shared by the core: content digests, atomic writes of files, atomic
replacement of folders, cache pruning."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import glob
import hashlib
import os
import secrets
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

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


class NotARegularFileError(OSError):
    """A path that should be a file is a FIFO, a device, a socket or a folder."""


_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_regular(mode: int, path: str | os.PathLike[str]) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
        raise NotARegularFileError(errno.EINVAL, f"not a regular file ({kind})", str(path))


def open_regular_file(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a regular file for reading (symbolic links followed); never a FIFO or a device,
    so the call cannot block on a pipe nor read from ``/dev/zero`` for ever.

    Raises:
        NotARegularFileError: ``path`` is a FIFO, a device, a socket or a folder (checked
            before opening, and again on what was opened).
        OSError: ``path`` cannot be opened.
    """
    _check_regular(os.stat(path).st_mode, path)  # a device is not even opened
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)  # O_NONBLOCK: a FIFO swapped in meanwhile cannot block
    try:
        _check_regular(os.fstat(descriptor).st_mode, path)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (see :func:`open_regular_file`).

    Raises:
        NotARegularFileError: ``path`` is not a regular file.
        OSError: It cannot be read, or it is larger than ``max_bytes`` (``EFBIG``).
    """
    with open_regular_file(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(max_bytes + 1) if size <= max_bytes else b""
        if size > max_bytes or len(data) > max_bytes:
            raise OSError(errno.EFBIG, f"larger than {max_bytes:,} bytes", str(path))
        return data


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


# --------------------------------------------------------------------------- folder replacement
#
# A folder (a model bundle) is written complete under a hidden sibling name, then swapped in.
# On Linux the swap is one renameat2(RENAME_EXCHANGE) call: at every instant the name holds the
# old or the new folder. Where that is unavailable (another OS, a file system that refuses it)
# the swap takes two renames, old -> ``.NAME.previous-XXXX`` then new -> NAME; a crash between
# the two leaves no NAME but a complete previous copy, which the next load or save restores.
# Savers hold an advisory lock on the parent folder for the whole save (flock, where there is
# one), so under that lock every leftover sibling is stale.

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_EXCHANGE_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}
PREVIOUS_TAG = "previous"
SAVING_TAG = "saving"
_READ_ATTEMPTS = 5
T = TypeVar("T")


def new_sibling_folder(target: Path, tag: str) -> Path:
    """Create an empty hidden folder ``.TARGET.TAG-XXXXXXXX`` next to ``target``.

    It is made with mode 0o777 and the umask applies, so it gets the permissions of any
    folder the user creates (the umask is never read or changed: that is process-wide).
    """
    for _ in range(100):
        candidate = target.parent / f".{target.name}.{tag}-{secrets.token_hex(4)}"
        try:
            os.mkdir(candidate, 0o777)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, "no free temporary folder name", str(target.parent))


def sibling_folders(target: Path, tag: str) -> list[Path]:
    """The ``.TARGET.TAG-*`` folders next to ``target``, newest first."""
    try:
        found = list(target.parent.glob(f".{glob.escape(target.name)}.{tag}-*"))
    except OSError:
        return []
    folders = []
    for path in found:
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                folders.append((path.stat().st_mtime_ns, path))
    return [path for _, path in sorted(folders, reverse=True)]


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``folder`` itself (no lock file is left behind).

    Where there is no ``flock`` (Windows), the folder cannot be opened or the file system
    refuses locks (some network shares), nothing is locked.
    """
    try:
        import fcntl
    except ImportError:
        fcntl = None
    descriptor = None
    if fcntl is not None:
        try:
            descriptor = os.open(folder, os.O_RDONLY)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError:
            pass
    try:
        yield
    finally:
        if descriptor is not None:
            os.close(descriptor)  # closing releases the lock


def tidy_interrupted_replace(target: Path) -> None:
    """Restore a previous copy an interrupted replace left without ``target``, then remove
    every stale temporary sibling. Call it holding :func:`folder_lock` on the parent."""
    previous = sibling_folders(target, PREVIOUS_TAG)
    if previous and not os.path.lexists(target):
        os.rename(previous.pop(0), target)
    for stale in previous + sibling_folders(target, SAVING_TAG):
        shutil.rmtree(stale, ignore_errors=True)


def recover_interrupted_replace(target: Path) -> Path | None:
    """When ``target`` is missing because a replace was interrupted, where its folder is now.

    Returns ``target`` once the newest previous copy is renamed back (or a save that was
    swapping has finished), that copy itself when it cannot be renamed (read-only folder),
    or None when there is nothing to recover.
    """
    if not sibling_folders(target, PREVIOUS_TAG):
        return None
    with folder_lock(target.parent):  # a save in the middle of its swap finishes first
        if os.path.lexists(target):
            return target
        previous = sibling_folders(target, PREVIOUS_TAG)
        if not previous:
            return target if os.path.lexists(target) else None
        try:
            os.rename(previous[0], target)
        except OSError:
            return previous[0]
        return target


def replace_folder(staging: Path, target: Path) -> None:
    """Put the complete folder ``staging`` in place of ``target`` (which may not exist).

    Raises:
        OSError: The folder could not be swapped in; ``target`` is as it was.
    """
    sync_folder(staging)  # its entries reach the disk before the name points at it
    if not os.path.lexists(target):
        os.rename(staging, target)
        sync_folder(target.parent)
        return
    if exchange_folders(staging, target):
        sync_folder(target.parent)
        shutil.rmtree(staging, ignore_errors=True)  # it now holds the old folder
        return
    backup = target.parent / f".{target.name}.{PREVIOUS_TAG}-{secrets.token_hex(4)}"
    os.rename(target, backup)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(backup, target)
        raise
    sync_folder(target.parent)
    shutil.rmtree(backup, ignore_errors=True)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (new names, renames) to the disk, where the system can (a
    power cut after a save then finds the new bundle, not an empty name)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # Windows and some file systems cannot sync a folder
    finally:
        os.close(descriptor)


def read_unchanging_folder(
    folder: Path, read: Callable[[Path], T], errors: type[Exception] | tuple[type[Exception], ...]
) -> T:
    """``read(folder)``, repeated when another folder was swapped in under that name while it
    ran (so the files of two saves are never mixed, and a folder deleted under the reader is
    no error). ``errors`` raised while the name kept its folder are passed on."""
    for _ in range(_READ_ATTEMPTS):
        before = _identity(folder)
        if before is None:  # between the two renames of a save: wait for it, or recover
            recovered = recover_interrupted_replace(folder)
            if recovered is not None and recovered != folder:
                return read(recovered)
            if recovered is None and _identity(folder) is None:
                return read(folder)  # nothing there and nothing to recover: its own error
            continue
        try:
            result = read(folder)
        except errors:
            if _identity(folder) == before:
                raise
            continue
        if _identity(folder) == before:
            return result
    return read(folder)


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What changes when another folder takes the name (a rename also changes the ctime)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_ctime_ns


def exchange_folders(first: Path, second: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns:
        False when this system or file system cannot do it (nothing changed).

    Raises:
        OSError: The exchange was refused for another reason (permissions ...).
    """
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in _EXCHANGE_UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(second))


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # no glibc >= 2.28 (musl has it since 1.2.5)
        return None
    path, fd = ctypes.c_char_p, ctypes.c_int
    function.argtypes = [fd, path, fd, path, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


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
