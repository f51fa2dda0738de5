"""The folder a user trains on: a scan report, a stratified split and class weights.

Two layouts are understood. ``folders``: one sub-folder per class, images possibly nested
deeper inside it. ``split``: ``train/`` and ``val/`` (or ``validation/``), optionally ``test/``,
each holding class sub-folders; those splits are used as given.

A scan never stops at a bad file: hidden files, non-images, unreadable images and images whose
label is ambiguous (the same bytes in two classes) are skipped and listed with a reason. A
folder that cannot be trained on raises one :class:`DatasetError` that says why.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnn_desktop.core.imaging.files import file_digest
from cnn_desktop.core.imaging.formats import skip_reason
from cnn_desktop.core.imaging.loading import ImageLoadError, load_image
from cnn_desktop.core.inference.devices import cpu_threads
from cnn_desktop.core.models.bundle import BUNDLE_SUFFIX
from cnn_desktop.core.tasks import CancelToken, ProgressCallback, no_progress

# Split name → folder names (compared case-insensitively) of the split layout.
SPLIT_FOLDER_NAMES = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}
IMBALANCE_RATIO = 3.0  # largest/smallest class size above which the report warns
FEW_IMAGES = 5  # classes with fewer usable images get a warning
_CHUNK = 64  # files checked between progress reports / cancel checks
_SUMMARY_CLASSES = 12


class DatasetError(ValueError):
    """A folder cannot be used as a dataset; ``str(err)`` says why in one sentence."""


@dataclass(frozen=True)
class ScanReport:
    """What :func:`scan_folder` found.

    Attributes:
        root: The dataset folder.
        layout: ``"folders"`` (one folder per class) or ``"split"`` (``train/``, ``val/``...).
        classes: Class names, sorted, spelled as on disk.
        items: Split name (``"all"`` for the folders layout; ``"train"``, ``"val"`` and maybe
            ``"test"`` for the split layout) → ``(path, class index)`` of each usable image.
        skipped: ``(path, reason)`` for each file or folder left out.
        warnings: Sentences a person should read before training.
    """

    root: Path
    layout: str
    classes: tuple[str, ...]
    items: dict[str, list[tuple[Path, int]]]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    digests: dict[Path, bytes] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Usable images per class name, over all splits, in class order."""
        tally = Counter(label for items in self.items.values() for _, label in items)
        return {name: tally[index] for index, name in enumerate(self.classes)}

    def split_counts(self) -> dict[str, dict[str, int]]:
        """Usable images per class name in each split."""
        tallies = {split: Counter(lbl for _, lbl in items) for split, items in self.items.items()}
        return {s: {c: t[i] for i, c in enumerate(self.classes)} for s, t in tallies.items()}

    @property
    def total(self) -> int:
        """Usable images in all splits."""
        return sum(len(items) for items in self.items.values())

    def summary(self) -> str:
        """A few lines a person reads before training."""
        kind = "one folder per class" if self.layout == "folders" else "train/val split folders"
        lines = [f"{len(self.classes)} classes, {self.total} images in {self.root} ({kind})"]
        counts = list(self.counts().items())
        shown = ", ".join(f"{name}: {n}" for name, n in counts[:_SUMMARY_CLASSES])
        more = len(counts) - _SUMMARY_CLASSES
        lines.append(f"  {shown}" + (f", … and {more} more" if more > 0 else ""))
        if self.layout == "split":
            sizes = ", ".join(f"{split} {len(items)}" for split, items in self.items.items())
            lines.append(f"Splits used as given: {sizes}")
        if self.skipped:
            kinds = Counter(_reason_kind(reason) for _, reason in self.skipped)
            detail = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
            lines.append(f"Skipped {len(self.skipped)}: {detail}")
        lines.extend(f"Warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form of the whole report."""
        return {
            "root": str(self.root),
            "layout": self.layout,
            "classes": list(self.classes),
            "counts": self.counts(),
            "total": self.total,
            "splits": {
                split: [{"path": str(path), "label": label} for path, label in items]
                for split, items in self.items.items()
            },
            "skipped": [{"path": str(path), "reason": reason} for path, reason in self.skipped],
            "warnings": list(self.warnings),
        }


def scan_folder(
    root: str | os.PathLike[str],
    *,
    check_images: bool = True,
    for_training: bool = True,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ScanReport:
    """Scan a dataset folder: find classes and images, skip and report what cannot be used.

    Each file is hashed: the same image in two classes has an ambiguous label, so all its
    copies are skipped; the same image twice in one class is kept once (in the split layout,
    the copy in train before val before test).

    Args:
        root: The dataset folder.
        check_images: Also decode each image (JPEGs at 1/8 scale: fast) and skip unreadable
            ones. Without it, bad images are found later by whoever decodes them.
        for_training: Require at least two classes and two images per class (in the split
            layout also one training image per class). False suits evaluation.
        progress: Called with (fraction done, message).
        cancel: Checked between files; raises ``Cancelled`` when set.

    Raises:
        DatasetError: The folder does not exist, has no class folders with images, or (with
            ``for_training``) has fewer than two classes or a class with too few images.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    skipped: list[tuple[Path, str]] = []
    splits = _split_folders(root)
    layout = "split" if splits else "folders"
    sources = splits or {"all": root}
    if splits:
        used = set(splits.values())
        for entry in _entries(root, skipped):
            if Path(entry.path) not in used:
                what = "folder" if _is_dir(entry) else "file"
                skipped.append((Path(entry.path), f"{what} ignored: not train, val or test"))
    class_names: set[str] = set()
    candidates: list[tuple[str, str, Path]] = []  # (split, class name, file)
    for split, folder in sources.items():
        progress(0.0, f"Listing files in {folder.name or folder}")
        for entry in _entries(folder, skipped):
            path = Path(entry.path)
            if not _is_dir(entry):
                skipped.append((path, "not inside a class folder"))
                continue
            if entry.name.endswith(BUNDLE_SUFFIX):
                skipped.append((path, "model bundle ignored"))
                continue
            class_names.add(entry.name)
            files = _walk_class_folder(path, skipped, cancel)
            candidates.extend((split, entry.name, file) for file in files)
    results = _check_files([c[2] for c in candidates], check_images, progress, cancel)
    kept = _drop_duplicates(candidates, results, skipped)
    classes = tuple(sorted(class_names))
    index = {name: i for i, name in enumerate(classes)}
    items: dict[str, list[tuple[Path, int]]] = {split: [] for split in sources}
    for split, name, path in kept:
        items[split].append((path, index[name]))
    skipped.sort(key=lambda entry: str(entry[0]))
    digests = {
        candidate[2]: result
        for candidate, result in zip(candidates, results, strict=True)
        if isinstance(result, bytes)
    }
    report = ScanReport(root, layout, classes, items, skipped, digests=digests)
    _validate(report, for_training)
    report.warnings.extend(_warnings(report))
    progress(1.0, f"Found {report.total} images in {len(classes)} classes")
    return report


def _entries(folder: Path, skipped: list[tuple[Path, str]]) -> list[os.DirEntry[str]]:
    """Visible entries of ``folder`` sorted by name; hidden ones are reported as skipped."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        skipped.append((folder, f"unreadable folder: {_os_reason(exc)}"))
        return []
    visible = []
    for entry in entries:
        if entry.name.startswith("."):
            kind = "hidden folder" if _is_dir(entry) else "hidden file"
            skipped.append((Path(entry.path), kind))
        else:
            visible.append(entry)
    return visible


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """Whether an entry is a folder (or a link to one)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _split_folders(root: Path) -> dict[str, Path] | None:
    """The split layout's folders, or None if ``root`` is not in that layout."""
    try:
        visible = [e for e in os.scandir(root) if not e.name.startswith(".")]
        folders = {e.name.casefold(): Path(e.path) for e in visible if _is_dir(e)}
    except OSError as exc:
        raise DatasetError(f"{root} cannot be read: {_os_reason(exc)}") from exc
    found = {
        split: folders[name]
        for split, names in SPLIT_FOLDER_NAMES.items()
        for name in reversed(names)  # the first name wins
        if name in folders
    }
    if not all(split in found and _has_subfolder(found[split]) for split in ("train", "val")):
        return None
    if "test" in found and not _has_subfolder(found["test"]):
        del found["test"]  # an empty test/ is reported as ignored
    return found


def _has_subfolder(folder: Path) -> bool:
    try:
        return any(not e.name.startswith(".") and _is_dir(e) for e in os.scandir(folder))
    except OSError:
        return False


def _walk_class_folder(
    folder: Path, skipped: list[tuple[Path, str]], cancel: CancelToken | None
) -> list[Path]:
    """Image files anywhere under one class folder, in a deterministic order."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()  # folders already walked (symbolic link loops)
    stack = [folder]
    while stack:
        if cancel is not None:
            cancel.raise_if_cancelled()
        current = stack.pop()
        try:
            info = current.stat()
        except OSError as exc:
            skipped.append((current, f"unreadable folder: {_os_reason(exc)}"))
            continue
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        subfolders = []
        for entry in _entries(current, skipped):
            path = Path(entry.path)
            if _is_dir(entry):
                subfolders.append(path)
            elif (reason := skip_reason(path)) is not None:
                skipped.append((path, reason))  # the same reasons as a classify folder walk
            else:
                found.append(path)
        stack.extend(reversed(subfolders))
    return found


def _check_files(
    paths: list[Path], check_images: bool, progress: ProgressCallback, cancel: CancelToken | None
) -> list[bytes | str]:
    """For each file its content hash, or the reason it cannot be used."""
    results: list[bytes | str] = []
    total = len(paths)
    with ThreadPoolExecutor(min(8, cpu_threads()), "scan") as pool:
        for start in range(0, total, _CHUNK):
            if cancel is not None:
                cancel.raise_if_cancelled()
            chunk = paths[start : start + _CHUNK]
            results.extend(pool.map(lambda path: _check_file(path, check_images), chunk))
            done = start + len(chunk)
            progress(done / total, f"Scanning {done}/{total} files")
    return results


def _check_file(path: Path, check_images: bool) -> bytes | str:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return "unreadable: not a regular file"  # a FIFO or device would block forever
    except OSError as exc:
        return f"unreadable: {_os_reason(exc)}"
    if check_images:
        try:
            load_image(path, min_side=32)  # JPEGs decode at 1/8 scale: fast
        except (ImageLoadError, OSError, ValueError) as exc:
            return f"unreadable: {exc}"
    try:
        return file_digest(path)
    except OSError as exc:
        return f"unreadable: {_os_reason(exc)}"


def _drop_duplicates(
    candidates: list[tuple[str, str, Path]],
    results: list[bytes | str],
    skipped: list[tuple[Path, str]],
) -> list[tuple[str, str, Path]]:
    """The candidates to keep: readable, label unambiguous, first copy within a class."""
    copies: dict[bytes, list[int]] = {}
    for i, result in enumerate(results):
        if isinstance(result, str):
            skipped.append((candidates[i][2], result))
        else:
            copies.setdefault(result, []).append(i)
    keep: set[int] = set()
    for group in copies.values():
        first = candidates[group[0]]
        if any(candidates[i][1] != first[1] for i in group):
            for i in group:
                other = next(candidates[j] for j in group if candidates[j][1] != candidates[i][1])
                reason = f"same image also in class '{other[1]}' ({other[2]})"
                skipped.append((candidates[i][2], reason))
            continue
        keep.add(group[0])
        skipped.extend((candidates[i][2], f"duplicate of {first[2]}") for i in group[1:])
    return [candidate for i, candidate in enumerate(candidates) if i in keep]


def _validate(report: ScanReport, for_training: bool) -> None:
    """Raise :class:`DatasetError` if the report cannot be used (for training)."""
    counts = report.counts()
    if not any(counts.values()):
        message = f"no class folders with images in {report.root}"
        loose = sum(1 for _, reason in report.skipped if reason == "not inside a class folder")
        if loose:
            message += f" ({loose} files lie directly in it; put each class in its own sub-folder)"
        raise DatasetError(message)
    if not for_training:
        return
    if len(report.classes) == 1:
        raise DatasetError(
            f"the folder has only one class ('{report.classes[0]}'); "
            "a classifier needs at least two"
        )
    small = [f"{name} ({n})" for name, n in counts.items() if n < 2]
    if small:
        raise DatasetError(f"classes with fewer than 2 images: {', '.join(small)}")
    if report.layout == "split":
        train = report.split_counts()["train"]
        missing = [name for name, n in train.items() if n == 0]
        if missing:
            raise DatasetError(f"classes with no images in train: {', '.join(missing)}")


def _warnings(report: ScanReport) -> list[str]:
    counts = {name: n for name, n in report.counts().items() if n > 0}
    warnings = []
    if len(counts) >= 2:
        largest = max(counts, key=lambda name: counts[name])
        smallest = min(counts, key=lambda name: counts[name])
        if counts[largest] > IMBALANCE_RATIO * counts[smallest]:
            warnings.append(
                f"classes are imbalanced: {largest} has {counts[largest]} images, "
                f"{smallest} {counts[smallest]}; a balanced sampler/class weights will be used"
            )
    if few := [f"{name} ({n})" for name, n in counts.items() if n < FEW_IMAGES]:
        warnings.append(f"classes with fewer than {FEW_IMAGES} images: {', '.join(few)}")
    for split, split_counts in report.split_counts().items():
        if split in ("val", "test") and 0 in split_counts.values():
            empty = ", ".join(name for name, n in split_counts.items() if n == 0)
            warnings.append(f"classes with no images in {split}: {empty}")
    return warnings


def vanished_message(root: Path, missing: Path) -> str:
    """What a run says when ``missing``, found by the scan of ``root``, is gone mid-training
    (the whole folder deleted or moved, or files taken out of it)."""
    if not root.is_dir():
        return f"the image folder {root} was deleted or moved during training"
    return f"images vanished from the image folder {root} during training (e.g. {missing})"


def _reason_kind(reason: str) -> str:
    """The reason without its details: ``unreadable: file is empty`` → ``unreadable``."""
    if reason.startswith(("same image also in class", "duplicate of")):
        return "same image in two classes" if reason.startswith("same") else "duplicate"
    return reason.split(":")[0].split(" (")[0]


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot read file ({(exc.strerror or str(exc)).lower()})"
