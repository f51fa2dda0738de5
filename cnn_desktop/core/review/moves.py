"""Moving an image to another class folder, undoing it, and the log of both.

Nothing is ever deleted and nothing is ever overwritten: a file whose name is taken in the
target folder gets a free name (``cat_001 (2).jpg``), claimed atomically. Every move and undo
is appended to ``DATA_DIR/.cnn-desktop-moves.jsonl`` (a hidden file, which the dataset scan
skips), with paths relative to the data folder. A move never leaves the data folder, and a
class name is one plain folder name.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnn_desktop.core.training.dataset import SPLIT_FOLDER_NAMES

MOVES_LOG = ".cnn-desktop-moves.jsonl"
MAX_NAME_ATTEMPTS = 10_000
_SPLIT_NAMES = {name for names in SPLIT_FOLDER_NAMES.values() for name in names}


class MoveError(ValueError):
    """A move or undo cannot be done; ``str(err)`` says why in one sentence."""


@dataclass(frozen=True)
class Move:
    """One file moved from one class folder to another (paths are absolute)."""

    source: Path
    target: Path
    from_class: str
    to_class: str
    number: int  # its position in the log: an undo names the move it undoes by it


def class_folder_of(root: Path, path: Path) -> Path:
    """The class folder holding ``path``: ``root/CLASS`` or, in the split layout,
    ``root/SPLIT/CLASS``.

    Raises:
        MoveError: ``path`` is not inside a class folder of ``root``.
    """
    parts = _inside(root, path).parts
    if len(parts) >= 3 and parts[0].casefold() in _SPLIT_NAMES:
        return Path(root).resolve() / parts[0] / parts[1]
    if len(parts) >= 2:
        return Path(root).resolve() / parts[0]
    raise MoveError(f"{path} is not inside a class folder of {root}")


def move_to_class(root: str | os.PathLike[str], path: str | os.PathLike[str], label: str) -> Move:
    """Move the image ``path`` into the class folder ``label`` (created if needed), next to
    its current class folder, under a free name; log it.

    Raises:
        MoveError: The file or class name is unusable, or the move would leave ``root``.
        OSError: The file system refused.
    """
    root = Path(root).resolve()
    source = Path(path)
    _check_class_name(label)
    current = class_folder_of(root, source)
    if current.name == label:
        raise MoveError(f"{source.name} is already in class '{label}'")
    if not source.is_file():
        raise MoveError(f"{source} is not a file")
    folder = current.parent / label
    folder.mkdir(exist_ok=True)
    _inside(root, folder)  # a class folder that is a link out of the data folder
    target = _move_without_overwriting(source, folder)
    entry = _append(root, "move", source, target, current.name, label)
    return Move(source.resolve(), target, current.name, label, entry)


def undo_last_move(root: str | os.PathLike[str]) -> Move | None:
    """Move back the latest file moved and not yet moved back (None if there is none).

    Raises:
        MoveError: That file is no longer where the move put it.
    """
    root = Path(root).resolve()
    pending = pending_moves(root)
    if not pending:
        return None
    move = pending[-1]
    if not move.target.is_file():
        raise MoveError(f"cannot undo: {move.target} is no longer there")
    _inside(root, move.source.parent)
    move.source.parent.mkdir(parents=True, exist_ok=True)
    back = _move_without_overwriting(move.target, move.source.parent, move.source.name)
    _append(root, "undo", move.target, back, move.to_class, move.from_class, undoes=move.number)
    return Move(move.target, back, move.to_class, move.from_class, move.number)


def read_log(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every entry of the data folder's move log, oldest first (damaged lines are left out)."""
    try:
        lines = (Path(root) / MOVES_LOG).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and {"action", "source", "target"} <= entry.keys():
            entries.append(entry)
    return entries


def pending_moves(root: str | os.PathLike[str]) -> list[Move]:
    """The moves not undone yet, oldest first."""
    root = Path(root).resolve()
    entries = read_log(root)
    undone = {e.get("undoes") for e in entries if e["action"] == "undo"}
    return [
        Move(root / e["source"], root / e["target"], e.get("from", ""), e.get("to", ""), n)
        for n, e in enumerate(entries)
        if e["action"] == "move" and n not in undone
    ]


def _check_class_name(label: str) -> None:
    if (
        not label
        or label in (".", "..")
        or label.startswith(".")
        or any(sep in label for sep in ("/", "\\", "\0"))
    ):
        raise MoveError(f"'{label}' is not a class folder name")


def _inside(root: Path, path: Path) -> Path:
    """``path`` relative to ``root``, links resolved; MoveError if it lies outside."""
    resolved_root = Path(root).resolve()
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(resolved_root)
    except ValueError:
        raise MoveError(f"{path} is outside the data folder {root}") from None


def _move_without_overwriting(source: Path, folder: Path, name: str | None = None) -> Path:
    """Give ``source`` a free name in ``folder`` (``name``, else ``stem (2).ext`` …) and
    return it. Claimed by hard link (atomic, never replaces); without hard links, a rename
    to a name checked free just before."""
    name = name or source.name
    stem, suffix = os.path.splitext(name)
    for attempt in range(1, MAX_NAME_ATTEMPTS):
        target = folder / (name if attempt == 1 else f"{stem} ({attempt}){suffix}")
        if os.path.lexists(target):
            continue
        try:
            os.link(source, target)
        except FileExistsError:
            continue  # taken meanwhile
        except OSError:  # no hard links here (FAT, some network shares)
            if os.path.lexists(target):
                continue
            os.rename(source, target)
            return target
        os.unlink(source)
        return target
    raise MoveError(f"no free file name for {name} in {folder}")


def _append(
    root: Path,
    action: str,
    source: Path,
    target: Path,
    from_class: str,
    to_class: str,
    undoes: int | None = None,
) -> int:
    """Append one entry to the log; returns its number (its line among the valid ones)."""
    entry: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "action": action,
        "source": str(_inside(root, source.parent) / source.name),
        "target": str(_inside(root, target)),
        "from": from_class,
        "to": to_class,
    }
    if undoes is not None:
        entry["undoes"] = undoes
    number = len(read_log(root))
    with open(root / MOVES_LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return number
