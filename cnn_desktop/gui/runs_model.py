"""The recorded runs as a table: one row per run record, columns for what tells runs apart
(start, status, data, mode, architecture, key options, validation accuracy, duration, tags),
and a proxy that sorts by the values themselves and filters by data folder and free text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from cnn_desktop.gui.gallery_filter import change_filter

RecordRole = Qt.ItemDataRole.UserRole + 1  # the whole record of a row
SortRole = Qt.ItemDataRole.UserRole + 2  # the value a column sorts by (None: unknown)
Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Column:
    """One column: its title, the value it sorts by and how that value reads."""

    title: str
    value: Callable[[dict[str, Any]], Any]
    text: Callable[[Any], str] = lambda value: "" if value is None else str(value)


def _config(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda record: (record.get("config") or {}).get(key)


def data_folder(record: dict[str, Any]) -> str:
    """The data folder a run trained on ("" when it records none)."""
    return str((record.get("data") or {}).get("folder") or "")


def format_seconds(value: Any) -> str:
    """``42 s``, ``3.5 min`` ("" when unknown)."""
    if not isinstance(value, (int, float)):
        return ""
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def format_percent(value: Any) -> str:
    """``97.5 %`` ("" when unknown)."""
    return f"{value:.1%}" if isinstance(value, (int, float)) else ""


def format_tags(tags: Any) -> str:
    """``rerun_of=20261202-…, sweep=lr`` (sorted by name)."""
    return ", ".join(f"{k}={v}" for k, v in sorted((tags or {}).items()))


COLUMNS = (
    Column(
        "Started",
        lambda r: r.get("started_at"),
        lambda v: str(v or "")[:19].replace("T", " "),
    ),
    Column("Status", lambda r: r.get("status")),
    Column("Data", data_folder, lambda v: Path(v).name if v else ""),
    Column("Mode", _config("mode")),
    Column("Architecture", _config("arch")),
    Column("Epochs", _config("epochs")),
    Column("LR", _config("lr"), lambda v: f"{v:g}" if isinstance(v, (int, float)) else ""),
    Column("Batch", _config("batch_size")),
    Column("Seed", _config("seed")),
    Column("Val. accuracy", lambda r: (r.get("metrics") or {}).get("val_accuracy"), format_percent),
    Column("Duration", lambda r: r.get("duration_s"), format_seconds),
    Column("Tags", lambda r: r.get("tags") or {}, format_tags),
)
COLUMN = {column.title: number for number, column in enumerate(COLUMNS)}


class RunsTableModel(QAbstractTableModel):
    """The run records, one per row, in the order given (the store's: newest first)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._records: list[dict[str, Any]] = []

    def set_records(self, records: Sequence[dict[str, Any]]) -> None:
        """Show ``records`` instead of the rows shown."""
        self.beginResetModel()
        self._records = list(records)
        self.endResetModel()

    def records(self) -> list[dict[str, Any]]:
        """Every record, in row order."""
        return list(self._records)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt API
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt API
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        record = self._records[index.row()]
        column = COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.text(column.value(record))
        if role == SortRole:
            return column.value(record)
        if role == RecordRole:
            return record
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(record)
        if role == Qt.ItemDataRole.TextAlignmentRole and 5 <= index.column() <= 10:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section].title
        return super().headerData(section, orientation, role)


def _tooltip(record: dict[str, Any]) -> str:
    lines = [f"Run {record.get('id')}: {record.get('status')}", data_folder(record)]
    if record.get("error"):
        lines.append(str(record["error"]))
    lines.append(f"Model: {record.get('bundle') or 'none saved'}")
    if tracking := record.get("tracking"):
        error = f" ({tracking['error']})" if tracking.get("error") else ""
        lines.append(f"MLflow: {tracking.get('uri')}, run {tracking.get('run_id') or '-'}{error}")
    return "\n".join(line for line in lines if line)


class RunsFilterModel(QSortFilterProxyModel):
    """Sorts by each column's value (numbers as numbers; unknown values last) and keeps the
    runs of one data folder (when one is set) whose text contains the filter text."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SortRole)
        self._folder: str | None = None
        self._text = ""

    @property
    def folder(self) -> str | None:
        """Only the runs trained on this folder (resolved) are kept; None: every run."""
        return self._folder

    def set_folder(self, folder: str | None) -> None:
        """Keep only the runs of ``folder`` (None or "": every run)."""
        resolved = str(Path(folder).expanduser().resolve()) if folder else None
        change_filter(self, "_folder", resolved)

    def set_text(self, text: str) -> None:
        """Keep only the runs whose id or any shown value contains ``text`` (any case)."""
        change_filter(self, "_text", text.strip().casefold())

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        record = model.index(source_row, 0, source_parent).data(RecordRole)
        if record is None:
            return False
        if self._folder is not None and data_folder(record) != self._folder:
            return False
        if not self._text:
            return True
        texts = [str(record.get("id", ""))] + [
            model.index(source_row, column, source_parent).data() or ""
            for column in range(len(COLUMNS))
        ]
        return any(self._text in text.casefold() for text in texts)

    def lessThan(self, left: Index, right: Index) -> bool:
        # Unknown values (a failed run's accuracy) stay below the others in either order.
        unknown_rank = 2 if self.sortOrder() == Qt.SortOrder.AscendingOrder else -1
        return _sort_key(left.data(SortRole), unknown_rank) < _sort_key(
            right.data(SortRole), unknown_rank
        )


def _sort_key(value: Any, unknown_rank: int) -> tuple[int, Any]:
    """Numbers as numbers, before text; unknown values ranked ``unknown_rank``."""
    if value is None or value == {}:
        return (unknown_rank, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    return (1, format_tags(value) if isinstance(value, dict) else str(value))
