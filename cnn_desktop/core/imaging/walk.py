"""Expanding the files and folders a user gives into image files, lazily.

:func:`walk_images` yields one :class:`WalkEntry` per outcome as the walk finds it, so a folder
of 100,000 files gives its first image after one folder has been listed, not after all of
them; :func:`collect_image_paths` is the same walk gathered into lists.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal, NamedTuple

from cnn_desktop.core.imaging.formats import skip_reason

Outcome = Literal["image", "problem", "skipped"]


class WalkEntry(NamedTuple):
    """One thing a walk found: an image to classify, a problem (an error) or a skipped file."""

    path: Path
    outcome: Outcome
    reason: str | None = None
    """Why it is a problem or skipped (None for an image)."""


class ImageListing(NamedTuple):
    """What :func:`collect_image_paths` found: one outcome for every non-hidden file."""

    paths: list[Path]
    """Image files to classify."""
    problems: list[tuple[Path, str]]
    """``(path, reason)`` for inputs that do not exist and folders or entries that cannot be
    read: errors."""
    skipped: list[tuple[Path, str]]
    """``(path, reason)`` for files in walked folders that are not images by name, e.g.
    ``"not an image type (.txt)"``: not errors."""


def describe_os_error(exc: OSError) -> str:
    """A short message for an OS error on one file or folder."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    return f"cannot read file ({(exc.strerror or str(exc)).lower()})"


def is_image_path(path: Path) -> bool:
    """Whether a file name looks like an image: an image suffix and not hidden.

    Args:
        path: The file path (only its name is looked at).

    Returns:
        True for names such as ``cat.JPG``; False for ``notes.txt`` or ``.cat.jpg``.
    """
    return skip_reason(path) is None


def walk_images(inputs: Iterable[str | os.PathLike]) -> Iterator[WalkEntry]:
    """Expand files and folders into image files, yielding each outcome as it is found.

    Folders are walked recursively in a deterministic order (each folder's files by name,
    then its sub-folders by name); a folder is listed only when the walk reaches it. Hidden
    files and folders are left out silently; every other file found gives exactly one entry.
    A folder named like an image (``x.jpg/``) is walked, never yielded. Symbolic links to
    folders are followed after the real folders, each folder at most once (no loops). A path
    given explicitly as a file is always an image; :func:`load_image` judges its content. A
    path is yielded once even if it is reached twice.

    Args:
        inputs: Files and folders, as given by the user.

    Yields:
        :class:`WalkEntry` ``(path, outcome, reason)``, in walk order.
    """
    seen_files: set[str] = set()
    seen_folders: set[tuple[int, int]] = set()

    def first_time(file: Path) -> bool:
        key = os.path.normcase(os.path.abspath(file))
        if key in seen_files:
            return False
        seen_files.add(key)
        return True

    def found(file: Path, reason: str | None) -> Iterator[WalkEntry]:
        if first_time(file):
            yield WalkEntry(file, "image") if reason is None else WalkEntry(file, "skipped", reason)

    for given in inputs:
        root = Path(given)
        if not root.is_dir():
            if root.exists():
                yield from found(root, None)
            else:
                yield WalkEntry(root, "problem", "file not found")
            continue
        # Real folders first, then symbolic links to folders, so files keep their real paths.
        stack: list[Path] = [root]
        linked: list[Path] = []
        while stack or linked:
            folder = stack.pop() if stack else linked.pop(0)
            try:
                folder_stat = folder.stat()
                identity = (folder_stat.st_dev, folder_stat.st_ino)
                if identity in seen_folders:
                    continue
                seen_folders.add(identity)
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: (e.name.casefold(), e.name))
            except OSError as exc:
                yield WalkEntry(folder, "problem", describe_os_error(exc))
                continue
            subfolders = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    is_dir = entry.is_dir()  # Follows symbolic links.
                    is_file = not is_dir and entry.is_file()
                except OSError as exc:
                    yield WalkEntry(Path(entry.path), "problem", describe_os_error(exc))
                    continue
                if is_dir:
                    (linked if entry.is_symlink() else subfolders).append(Path(entry.path))
                elif not is_file:
                    reason = "broken symbolic link" if entry.is_symlink() else "not a regular file"
                    yield from found(Path(entry.path), reason)
                else:
                    yield from found(Path(entry.path), skip_reason(Path(entry.name)))
            del entries  # a big folder's listing is not kept while its sub-folders are walked
            stack.extend(reversed(subfolders))


def collect_image_paths(inputs: Iterable[str | os.PathLike]) -> ImageListing:
    """:func:`walk_images` gathered into lists: the image files, the problems, the skipped.

    Args:
        inputs: Files and folders, as given by the user.

    Returns:
        An :class:`ImageListing` ``(paths, problems, skipped)``.
    """
    listing = ImageListing([], [], [])
    for path, outcome, reason in walk_images(inputs):
        if outcome == "image":
            listing.paths.append(path)
        elif outcome == "problem":
            listing.problems.append((path, reason or ""))
        else:
            listing.skipped.append((path, reason or ""))
    return listing
