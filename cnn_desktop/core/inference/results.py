"""Taking classification results away: class folders on disk and a CSV for spreadsheets.

Both writers are careful with the user's files: nothing is ever overwritten, a crash never
leaves a half-written file under its final name, and one unreadable source is reported and
skipped without stopping the batch.
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import shutil
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cnn_desktop.core.tasks import Cancelled, CancelToken, ProgressCallback, no_progress

MAX_FOLDER_CHARS = 100
MAX_FOLDER_BYTES = 200  # most file systems allow 255 bytes per name; leave room for " (N)"
MAX_NAME_ATTEMPTS = 10_000
UNLABELLED = "unlabelled"
CSV_COLUMNS = ("path", "top1_label", "top1_confidence", "top5", "error", "unknown")

_FORBIDDEN_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')  # Windows' list + C0 controls
_WINDOWS_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|(COM|LPT)[0-9¹²³])", re.I)
_KEEP_FORMAT_CHARS = {"\u200c", "\u200d"}  # joiners inside emoji and Indic scripts
# Cells a spreadsheet would run as a formula; "'" too, so that reading back is unambiguous.
_QUOTED_START = ("=", "+", "-", "@", "\t", "\r", "'")


class SortCancelled(Cancelled):
    """Sorting was cancelled; :attr:`report` says what had been done (all of it complete)."""

    def __init__(self, report: SortReport) -> None:
        super().__init__("cancelled")
        self.report = report


@dataclass
class SortReport:
    """What :func:`sort_into_class_folders` did."""

    copied: list[tuple[Path, Path]] = field(default_factory=list)
    moved: list[tuple[Path, Path]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    folders_created: list[Path] = field(default_factory=list)
    folders: dict[str, Path] = field(default_factory=dict)  # label -> folder it went to

    def summary(self, destination: Path | None = None) -> str:
        """One line for the user, e.g. ``Copied 42 images into 5 folders; 1 skipped``.

        Args:
            destination: Named after the folder count (``… into 5 folders in /x``) if given.
        """
        done = self.moved or self.copied
        verb = "Moved" if self.moved else "Copied"
        used = {target.parent for _source, target in done}
        text = (
            f"{verb} {_count(len(done), 'image')} into {_count(len(used), 'folder')}"
            if done
            else "No images sorted"
        )
        text += f" in {destination}" if destination is not None else ""
        return text + (f"; {len(self.skipped)} skipped" if self.skipped else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def safe_folder_name(label: str) -> str:
    """A folder name for ``label`` that is valid, and means the same, on every OS.

    Path separators and characters Windows forbids become ``_``; control and invisible
    bidirectional characters are dropped; leading dots (hidden folders, ``..``), trailing dots
    and spaces are stripped; reserved Windows device names (``CON``, ``NUL``, ``COM1``…) get a
    ``_`` appended; long labels are cut. Readable Unicode is kept. An empty result becomes
    ``unlabelled``.
    """
    text = unicodedata.normalize("NFC", label)
    text = "".join(
        " " if unicodedata.category(ch) in ("Zl", "Zp") else ch
        for ch in text
        if unicodedata.category(ch) not in ("Cf", "Cs", "Co", "Cn") or ch in _KEEP_FORMAT_CHARS
    )
    text = _FORBIDDEN_CHARS.sub("_", text)
    text = " ".join(text.split())  # tabs, newlines, runs of spaces -> one space
    text = _trim(text.lstrip(". "))
    if len(text) > MAX_FOLDER_CHARS or len(text.encode("utf-8")) > MAX_FOLDER_BYTES:
        text = text[:MAX_FOLDER_CHARS]
        while len(text.encode("utf-8")) > MAX_FOLDER_BYTES:
            text = text[:-1]
        text = _trim(text)
    head, dot, rest = text.partition(".")
    if _WINDOWS_RESERVED.fullmatch(head.rstrip(" ")):
        text = f"{head}_{dot}{rest}"  # Windows reserves "CON" and "CON.anything" alike
    return text or UNLABELLED


def _trim(text: str) -> str:
    return text.rstrip(". ").strip()


def sort_into_class_folders(
    items: Iterable[tuple[Path, str]],
    destination: Path,
    *,
    move: bool = False,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> SortReport:
    """Copy (or move) each image into ``destination/<label>/``.

    Existing files are never overwritten: a clashing name becomes ``name (2).jpg``,
    ``name (3).jpg``… Copies keep timestamps and are written under a temporary name, flushed,
    then linked to the final name, so a crash never leaves a partial file there. Labels that
    differ only in case or in characters a folder name cannot hold get folders of their own
    (``label (2)``). A source that is missing or unreadable is reported in
    :attr:`SortReport.skipped` and the batch goes on.

    Args:
        items: (image path, class label) pairs.
        destination: Folder that receives one sub-folder per label (created if needed).
        move: Move the files instead of copying them.
        progress: ``progress(fraction, message)`` callback.
        cancel: Checked between files.

    Returns:
        What was copied or moved, skipped, and which folders were created.

    Raises:
        SortCancelled: When ``cancel`` fired; its ``report`` lists what was completed.
        OSError: When ``destination`` itself cannot be created.
    """
    pairs = list(items)
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    report = SortReport()
    taken: dict[str, str] = {}  # case-folded folder name -> label that owns it
    verb = "Moving" if move else "Copying"
    for number, (source, label) in enumerate(pairs):
        if cancel is not None and cancel.cancelled:
            raise SortCancelled(report)
        source = Path(source)
        progress(number / max(len(pairs), 1), f"{verb} {source.name}…")
        try:
            folder = report.folders.get(label) or _claim_folder(destination, label, taken, report)
            if not source.is_file():
                raise (OSError("not a file") if source.exists() else FileNotFoundError())
            target = _move_into(source, folder) if move else _copy_into(source, folder)
        except OSError as exc:
            report.skipped.append((source, _reason(exc)))
            continue
        (report.moved if move else report.copied).append((source, target))
    progress(1.0, report.summary())
    return report


def _claim_folder(destination: Path, label: str, taken: dict[str, str], report: SortReport) -> Path:
    base = safe_folder_name(label)
    for attempt in range(1, MAX_NAME_ATTEMPTS):
        name = base if attempt == 1 else f"{base} ({attempt})"
        owner = taken.get(name.casefold())
        if owner is not None and owner != label:
            continue  # another label of this batch already owns it
        folder = destination / name
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            continue  # never write through a link or over a file
        if not folder.exists():
            folder.mkdir()
            report.folders_created.append(folder)
        taken[name.casefold()] = label
        report.folders[label] = folder
        return folder
    raise OSError(f"no free folder name for {label!r}")


def _candidates(folder: Path, file_name: str) -> Iterable[Path]:
    stem, suffix = os.path.splitext(file_name)
    yield folder / file_name
    for n in range(2, MAX_NAME_ATTEMPTS):
        yield folder / f"{stem} ({n}){suffix}"


def _copy_into(source: Path, folder: Path) -> Path:
    handle, temp_name = tempfile.mkstemp(prefix=".cnn-desktop-", suffix=".part", dir=folder)
    os.close(handle)
    temp = Path(temp_name)
    try:
        shutil.copy2(source, temp)
        with open(temp, "rb+") as written:
            os.fsync(written.fileno())
        return _claim_name(temp, folder, source.name)
    finally:
        temp.unlink(missing_ok=True)


def _move_into(source: Path, folder: Path) -> Path:
    if source.parent.resolve() == folder.resolve():
        return source  # already in its class folder
    target = _link_into(source, folder) or _copy_into(source, folder)
    try:
        source.unlink()
    except OSError:
        target.unlink(missing_ok=True)  # a move that cannot delete its source does nothing
        raise
    return target


def _link_into(source: Path, folder: Path) -> Path | None:
    """Hard-link ``source`` under the first free name; None where links are not possible."""
    for target in _candidates(folder, source.name):
        try:
            os.link(source, target)  # atomic, and fails instead of overwriting
            return target
        except FileExistsError:
            continue
        except OSError:
            return None  # another file system, or no hard links there
    raise OSError(f"no free file name for {source.name} in {folder}")


def _claim_name(temp: Path, folder: Path, file_name: str) -> Path:
    """Give the finished ``temp`` the first free name; never replaces an existing file."""
    for target in _candidates(folder, file_name):
        try:
            os.link(temp, target)
            return target
        except FileExistsError:
            continue
        except OSError:
            pass  # no hard links on this file system (FAT, some network shares)
        if os.name == "nt":
            try:
                os.rename(temp, target)  # Windows' rename refuses to overwrite
                return target
            except FileExistsError:
                continue
        if not os.path.lexists(target):
            os.replace(temp, target)
            return target
    raise OSError(f"no free file name for {file_name} in {folder}")


def _reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found (moved or deleted?)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


class _PredictionLike(Protocol):
    label: str
    confidence: float


class ResultRowLike(Protocol):
    """Anything with a path, top predictions, an error and the unknown verdict (True, False,
    or None when undecided) (ImageResult, ImageEntry…)."""

    path: Path
    predictions: Sequence[_PredictionLike]
    error: str | None
    unknown: bool | None


def write_results_csv(rows: Iterable[ResultRowLike], path: Path) -> int:
    """Write one line per image: path, top-1 label and confidence, top-5, error, unknown
    (``true`` when the model's unknown detector found the image like none of its classes,
    the labels then being the closest ones; ``false``; empty when undecided).

    The file is UTF-8 *with* a byte-order mark: Excel reads a BOM-less CSV in the system's
    legacy code page and garbles every non-ASCII label, while LibreOffice, Numbers, Google
    Sheets, pandas and ``csv`` with ``encoding="utf-8-sig"`` all accept the BOM. Quoting
    follows RFC 4180 (commas, quotes and newlines in labels survive). Text cells that a
    spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) get a leading
    ``'``, as do cells starting with ``'`` (:func:`read_cell` undoes it).
    ``top5`` is ``label:0.912345;label:0.012345`` with ``\\`` and ``;`` in labels escaped by
    ``\\`` (see :func:`parse_top5`). Written to a temporary file, then renamed into place.

    Args:
        rows: Results; each has ``path``, ``predictions`` (best first) and ``error``.
        path: The CSV file to write (replaced if it exists, only once complete).

    Returns:
        The number of rows written.
    """
    path = Path(path)
    temp = path.with_name(f".cnn-desktop-{secrets.token_hex(6)}.part")
    count = 0
    try:
        # "x": created exclusively, with the permissions of any new file (umask applies); a
        # file name that is not valid UTF-8 (lone surrogates) is written as backslash escapes
        with open(temp, "x", encoding="utf-8-sig", errors="backslashreplace", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(CSV_COLUMNS)
            for row in rows:
                top = row.predictions[0] if row.predictions else None
                writer.writerow(
                    [
                        _cell(str(row.path)),
                        _cell(top.label) if top else "",
                        f"{top.confidence:.6f}" if top else "",
                        _cell(";".join(_top5_item(p) for p in row.predictions[:5])),
                        _cell(row.error or ""),
                        _verdict(getattr(row, "unknown", None)),
                    ]
                )
                count += 1
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return count


def _verdict(unknown: bool | None) -> str:
    return "" if unknown is None else str(bool(unknown)).lower()


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_QUOTED_START) else text


def read_cell(cell: str) -> str:
    """A text cell of :func:`write_results_csv` as it was before formula-quoting."""
    return cell[1:] if cell.startswith("'") else cell


def _top5_item(prediction: _PredictionLike) -> str:
    label = prediction.label.replace("\\", "\\\\").replace(";", "\\;")
    return f"{label}:{prediction.confidence:.6f}"


def parse_top5(cell: str) -> list[tuple[str, float]]:
    """Read back a ``top5`` cell written by :func:`write_results_csv`."""
    cell = read_cell(cell)
    items, current, chars = [], [], iter(cell)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, ""))
        elif ch == ";":
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current or items:
        items.append("".join(current))
    result = []
    for item in items:
        label, _, confidence = item.rpartition(":")
        result.append((label, float(confidence)))
    return result
