"""The list of images the user gave the window, and what the model said of each."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import QApplication

from cnn_desktop.core.inference import Prediction

PathRole = Qt.ItemDataRole.UserRole + 1
EntryRole = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex


@dataclass
class ImageEntry:
    """One image in the gallery.

    ``model_serial`` is the :attr:`ActiveModel.serial` of the model that gave the
    predictions (None while pending): class indices only mean something to that model.
    ``unknown`` is True when the model's unknown detector found the image like none of its
    classes (the predictions are the closest ones), None when it decided nothing.
    """

    path: Path
    thumbnail: QImage | None = None
    predictions: tuple[Prediction, ...] = ()
    error: str | None = None
    pending: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    model_serial: int | None = None
    unknown: bool | None = None

    @property
    def top1(self) -> Prediction | None:
        """The most probable class, once classified."""
        return self.predictions[0] if self.predictions else None

    def caption(self) -> str:
        """Two lines under the thumbnail: file name, then verdict."""
        name = self.path.name or str(self.path)
        if self.error is not None:
            return f"{name}\n⚠ {self.error}"
        if self.pending:
            return f"{name}\nclassifying…"
        top = self.top1
        if top is None:
            return name
        if self.unknown:
            return f"{name}\nUnknown (closest: {top.label} — {top.confidence:.1%})"
        return f"{name}\n{top.label} — {top.confidence:.1%}"


class ResultsModel(QAbstractListModel):
    """Rows of :class:`ImageEntry`, filled in as results arrive."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._entries: list[ImageEntry] = []
        self._rows: dict[Path, int] = {}
        self._classified = 0
        self._failed = 0

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt API
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        entry = self._entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return entry.caption()
        if role == Qt.ItemDataRole.DecorationRole:
            return entry.thumbnail
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(entry.path) + (f"\n{entry.error}" if entry.error else "")
        if role == Qt.ItemDataRole.ForegroundRole and entry.error is not None:
            return QColor("#d04040")
        if role == Qt.ItemDataRole.ForegroundRole and entry.pending:
            return QApplication.palette().color(QPalette.ColorRole.PlaceholderText)
        if role == PathRole:
            return str(entry.path)
        if role == EntryRole:
            return entry
        return None

    def entries(self) -> list[ImageEntry]:
        """All rows, in order."""
        return list(self._entries)

    def counts(self) -> tuple[int, int, int]:
        """``(rows, classified, failed)``, kept as rows change (no recount of 100,000 rows)."""
        return len(self._entries), self._classified, self._failed

    def entry(self, row: int) -> ImageEntry:
        """The row ``row``."""
        return self._entries[row]

    def add_pending(self, paths: list[Path]) -> list[Path]:
        """Add rows for new paths; already-listed ones are marked pending again (their
        thumbnails stay until the new result brings its own)."""
        unique = list(dict.fromkeys(paths))  # hashing a Path is not free: once per path
        fresh = []
        for path in unique:
            row = self._rows.get(path)
            if row is None:
                fresh.append(path)
                continue
            old = self._entries[row]
            if not old.pending or old.predictions or old.error is not None:
                self._replace(path, ImageEntry(path, old.thumbnail))
        if fresh:
            start = len(self._entries)
            self.beginInsertRows(QModelIndex(), start, start + len(fresh) - 1)
            for offset, path in enumerate(fresh):
                self._rows[path] = start + offset
                self._entries.append(ImageEntry(path))
            self.endInsertRows()
        return unique

    def set_result(
        self,
        path: Path,
        predictions: tuple[Prediction, ...],
        error: str | None,
        thumbnail: QImage | None,
        model_serial: int | None = None,
        unknown: bool | None = None,
    ) -> None:
        """Fill in a row with its outcome (adding it if needed); ``unknown``: the model's
        unknown verdict, if it has a detector."""
        if path not in self._rows:
            self.add_pending([path])
        old = self._entries[self._rows[path]]
        thumbnail = thumbnail or old.thumbnail
        entry = ImageEntry(
            path, thumbnail, predictions, error, False, model_serial=model_serial, unknown=unknown
        )
        self._replace(path, entry)

    def _replace(self, path: Path, entry: ImageEntry) -> None:
        row = self._rows[path]
        self._count(self._entries[row], -1)
        self._entries[row] = entry
        self._count(entry, +1)
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def relocate(self, old: Path, new: Path) -> None:
        """An image was moved on disk (e.g. sorted into a class folder): follow it."""
        row = self._rows.pop(old, None)
        if row is None or new in self._rows:
            return
        self._rows[new] = row
        entry = self._entries[row]
        self._entries[row] = dataclasses.replace(entry, path=new)
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def _count(self, entry: ImageEntry, sign: int) -> None:
        if entry.error is not None:
            self._failed += sign
        elif entry.top1 is not None:
            self._classified += sign

    def row_of(self, path: Path) -> int | None:
        """The row of ``path``, if listed."""
        return self._rows.get(path)

    def clear(self) -> None:
        """Remove every row."""
        self.beginResetModel()
        self._entries.clear()
        self._rows.clear()
        self._classified = self._failed = 0
        self.endResetModel()
