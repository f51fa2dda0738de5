"""The local run store: one folder per training run under the per-user data folder.

``<store>/<run id>/run.json`` holds the record (config, data fingerprint, versions, device,
status, per-epoch history, final metrics, the bundle's path); ``files.json.gz`` beside it lists
the data set's files (relative path, size, digest) so a re-run can say what changed. Each file
is written through a temporary name and renamed into place, so a crash never leaves half a
record, and several processes (a sweep's workers) can record runs in one store at once.

A record that cannot be read is never dropped silently: it is moved to ``<store>/.set-aside/``
and named in :attr:`RunStore.problems`.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from cnn_desktop.core.imaging.files import atomic_write

RUN_FILE = "run.json"
FILES_FILE = "files.json.gz"
SET_ASIDE = ".set-aside"
FORMAT_VERSION = 1
STATUSES = ("running", "finished", "cancelled", "failed")
_MAX_RECORD_BYTES = 64 * 1024 * 1024


class RunStoreError(ValueError):
    """A run cannot be found, read or written; the message says which and why."""


def default_store_dir() -> Path:
    """``CNN_DESKTOP_RUNS_DIR``, else ``runs`` in the per-user data folder."""
    override = os.environ.get("CNN_DESKTOP_RUNS_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir("cnn-desktop")) / "runs"


def new_run_id() -> str:
    """Sortable by start time, unique across processes: ``20261202-031500-1a2b3c``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class RunStore:
    """The runs under ``root`` (created when the first run is written).

    Attributes:
        root: The store's folder.
        problems: One sentence per record that could not be read and was set aside.
    """

    root: Path = field(default_factory=default_store_dir)
    problems: list[str] = field(default_factory=list)

    def write(self, record: dict[str, Any]) -> None:
        """Write (or replace) the record ``record["id"]``.

        Raises:
            RunStoreError: The store's folder cannot be written.
        """
        folder = self.root / record["id"]
        try:
            with atomic_write(folder / RUN_FILE, "w", encoding="utf-8") as stream:
                json.dump(record, stream, ensure_ascii=False, indent=1, default=_plain)
        except OSError as exc:
            raise RunStoreError(
                f"the run store {self.root} cannot be written: {_why(exc)}"
            ) from None

    def write_files(self, run_id: str, files: list[list[Any]]) -> None:
        """Store the data set's listing of run ``run_id`` (``[path, size, digest]`` rows)."""
        try:
            with atomic_write(self.root / run_id / FILES_FILE) as stream:
                stream.write(gzip.compress(json.dumps(files).encode(), mtime=0))
        except OSError as exc:
            raise RunStoreError(
                f"the run store {self.root} cannot be written: {_why(exc)}"
            ) from None

    def read_files(self, run_id: str) -> list[list[Any]] | None:
        """The data set's listing recorded with ``run_id`` (None: missing or unreadable)."""
        try:
            data = (self.root / run_id / FILES_FILE).read_bytes()
            return json.loads(gzip.decompress(data))
        except (OSError, ValueError, EOFError):
            return None

    def runs(self) -> list[dict[str, Any]]:
        """Every readable record, newest first; unreadable ones are set aside (see
        :attr:`problems`)."""
        if not self.root.is_dir():
            return []
        records = []
        for folder in sorted(self.root.iterdir(), reverse=True):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            record = self._read(folder)
            if record is not None:
                records.append(record)
        return records

    def get(self, run_id: str) -> dict[str, Any]:
        """The record whose id is ``run_id`` or starts with it (a unique prefix).

        Raises:
            RunStoreError: No run, or several, match; or its record is unreadable.
        """
        run_id = run_id.strip()
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise RunStoreError(f"'{run_id}' is not a run id (see: cnn-desktop runs list)")
        folder = self.root / run_id
        if not (folder / RUN_FILE).is_file():
            matches = (
                sorted(p for p in self.root.glob(f"{run_id}*") if (p / RUN_FILE).is_file())
                if self.root.is_dir()
                else []
            )
            if len(matches) > 1:
                names = ", ".join(p.name for p in matches[:4])
                raise RunStoreError(f"'{run_id}' matches {len(matches)} runs ({names}…)")
            if not matches:
                raise RunStoreError(
                    f"no run '{run_id}' in {self.root} (see: cnn-desktop runs list)"
                )
            folder = matches[0]
        record = self._read(folder)
        if record is None:
            raise RunStoreError(self.problems[-1])
        return record

    def delete(self, run_id: str) -> dict[str, Any]:
        """Remove the record of ``run_id`` (never its bundle) and return it.

        Raises:
            RunStoreError: As :meth:`get`, or the folder cannot be removed.
        """
        record = self.get(run_id)
        try:
            shutil.rmtree(self.root / record["id"])
        except OSError as exc:
            raise RunStoreError(f"run {record['id']} cannot be deleted: {_why(exc)}") from None
        return record

    def _read(self, folder: Path) -> dict[str, Any] | None:
        path = folder / RUN_FILE
        try:
            if path.stat().st_size > _MAX_RECORD_BYTES:
                raise ValueError(f"over {_MAX_RECORD_BYTES // 2**20} MiB")
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or record.get("id") != folder.name:
                raise ValueError("not a cnn-desktop run record")
            if record.get("status") not in STATUSES:
                raise ValueError(f"unknown status {record.get('status')!r}")
            return record
        except FileNotFoundError:
            try:
                if all(entry.name.startswith(".") for entry in folder.iterdir()):
                    return None  # a run being created right now (only its temporary file)
            except OSError:
                return None  # deleted meanwhile
            reason = "its run.json is missing"
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeError are ValueErrors
            reason = _why(exc) if isinstance(exc, OSError) else str(exc)
        self._set_aside(folder, reason)
        return None

    def _set_aside(self, folder: Path, reason: str) -> None:
        destination = self.root / SET_ASIDE / f"{folder.name}-{secrets.token_hex(2)}"
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.rename(folder, destination)
            where = f"moved to {destination}"
        except OSError as exc:
            where = f"left in place ({_why(exc)})"
        self.problems.append(f"run record {folder.name} is unreadable ({reason}); {where}")


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _plain(value: Any) -> Any:
    """JSON for the few non-JSON values a record holds (paths, tuples, numpy numbers)."""
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
