"""What a run was trained on, exactly: the data set's fingerprint and what changed since.

The fingerprint covers the sorted relative paths, sizes and content digests of the usable
images, the class → index map and the split (which images are validation and test). The scan
that starts every run has read each file's digest already, so it costs one ``stat`` per file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cnn_desktop.core.imaging.files import file_digest
from cnn_desktop.core.training.dataset import ScanReport
from cnn_desktop.core.training.splits import Split

FileRow = list[Any]
"""``[relative path, size in bytes, digest (hex)]``."""


def data_fingerprint(report: ScanReport, split: Split) -> tuple[dict[str, Any], list[FileRow]]:
    """The ``data`` block of a run record, and the listing of its files.

    Returns:
        ``{"folder", "fingerprint", "images", "classes" (name → index), "layout", "split":
        {"train", "val", "test", "digest"}, "skipped"}`` and the sorted file rows.
    """
    root = report.root
    rows = sorted(
        _row(root, path, report.digests.get(path))
        for items in report.items.values()
        for path, _ in items
    )
    classes = {name: index for index, name in enumerate(report.classes)}
    held_out = {
        part: sorted(_relative(root, path) for path, _ in getattr(split, part))
        for part in ("val", "test")
    }
    split_digest = _digest(held_out)
    fingerprint = _digest({"files": rows, "classes": classes, "split": split_digest})
    block = {
        "folder": str(Path(root).resolve()),
        "fingerprint": fingerprint,
        "images": len(rows),
        "classes": classes,
        "layout": report.layout,
        "split": {
            "train": len(split.train),
            "val": len(split.val),
            "test": len(split.test),
            "digest": split_digest,
        },
        "skipped": len(report.skipped),
    }
    return block, rows


def describe_changes(
    recorded: dict[str, Any],
    current: dict[str, Any],
    recorded_files: list[FileRow] | None,
    current_files: list[FileRow],
) -> str:
    """What differs between the recorded data and the data now, in one sentence (empty when
    the fingerprints agree)."""
    if recorded.get("fingerprint") == current.get("fingerprint"):
        return ""
    parts = []
    if recorded.get("classes") != current.get("classes"):
        parts.append(
            f"the classes were {', '.join(recorded.get('classes') or {})} and are now "
            f"{', '.join(current['classes'])}"
        )
    if recorded_files is not None:
        before = {row[0]: tuple(row[1:]) for row in recorded_files}
        after = {row[0]: tuple(row[1:]) for row in current_files}
        for what, names in (
            ("added", sorted(after.keys() - before.keys())),
            ("removed", sorted(before.keys() - after.keys())),
            ("changed", sorted(k for k in before.keys() & after.keys() if before[k] != after[k])),
        ):
            if names:
                example = ", ".join(names[:3]) + (" …" if len(names) > 3 else "")
                parts.append(
                    f"{len(names)} file{'s' if len(names) != 1 else ''} {what} ({example})"
                )
    if not parts and recorded.get("split", {}).get("digest") != current["split"]["digest"]:
        parts.append("the validation split differs")
    if not parts:
        parts.append(f"{recorded.get('images')} images then, {current['images']} now")
    return "; ".join(parts)


def _row(root: Path, path: Path, digest: bytes | None) -> FileRow:
    try:
        size = path.stat().st_size
        digest = digest or file_digest(path)
    except OSError:
        return [_relative(root, path), -1, ""]
    return [_relative(root, path), size, digest.hex()]


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _digest(value: Any) -> str:
    return hashlib.blake2b(json.dumps(value, sort_keys=True).encode(), digest_size=16).hexdigest()
