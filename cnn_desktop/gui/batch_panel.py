"""The batch view: every result in a sortable table, exported as CSV or sorted into folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cnn_desktop.core.inference import SortCancelled, SortReport, sort_into_class_folders
from cnn_desktop.core.inference import write_results_csv as write_csv
from cnn_desktop.gui.results_model import ImageEntry, ResultsModel
from cnn_desktop.gui.runner import TaskContext, TaskHandle, TaskRunner

Index = QModelIndex | QPersistentModelIndex
SortRole = Qt.ItemDataRole.UserRole + 10
FILE, LABEL, CONFIDENCE, ERROR = range(4)
HEADERS = ("File", "Label", "Confidence", "Error")
SUMMARY_DELAY_MS = 200
MAX_SKIPS_SHOWN = 20


class ResultsTableModel(QAbstractTableModel):
    """A :class:`ResultsModel` as a table: file name, top-1 label, confidence, error."""

    def __init__(self, results: ResultsModel, parent: Any = None) -> None:
        super().__init__(parent)
        self.results = results
        root = QModelIndex()
        results.rowsAboutToBeInserted.connect(lambda _p, a, b: self.beginInsertRows(root, a, b))
        results.rowsInserted.connect(lambda *_: self.endInsertRows())
        results.rowsAboutToBeRemoved.connect(lambda _p, a, b: self.beginRemoveRows(root, a, b))
        results.rowsRemoved.connect(lambda *_: self.endRemoveRows())
        results.modelAboutToBeReset.connect(lambda *_: self.beginResetModel())
        results.modelReset.connect(lambda *_: self.endResetModel())
        results.layoutAboutToBeChanged.connect(lambda *_: self.beginResetModel())
        results.layoutChanged.connect(lambda *_: self.endResetModel())
        results.dataChanged.connect(self._rows_changed)

    def _rows_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, *_roles) -> None:
        last = len(HEADERS) - 1
        self.dataChanged.emit(self.index(top_left.row(), 0), self.index(bottom_right.row(), last))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt API
        return 0 if parent.isValid() else self.results.rowCount()

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt API
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(HEADERS):
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < self.results.rowCount():
            return None
        entry = self.results.entry(index.row())
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return _display(entry, column)
        if role == SortRole:
            return _sort_value(entry, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(entry.path) + (f"\n{entry.error}" if entry.error else "")
        if role == Qt.ItemDataRole.TextAlignmentRole and column == CONFIDENCE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


def _display(entry: ImageEntry, column: int) -> str:
    top = entry.top1
    if column == FILE:
        return entry.path.name or str(entry.path)
    if column == LABEL:
        return top.label if top else ("" if entry.error or not entry.pending else "classifying…")
    if column == CONFIDENCE:
        return f"{top.confidence:.1%}" if top else ""
    return entry.error or ""


def _sort_value(entry: ImageEntry, column: int) -> Any:
    top = entry.top1
    if column == FILE:
        return entry.path.name.casefold()
    if column == LABEL:
        return top.label.casefold() if top else ""
    if column == CONFIDENCE:
        return top.confidence if top else (-1.0 if entry.error else -2.0)
    return entry.error or ""


class BatchPanel(QWidget):
    """A table of every result, with "Export CSV…" and "Sort into Class Folders…".

    Failures and reports go out through :attr:`message` and :attr:`error` (the window shows
    them in its notification area); :attr:`files_moved` tells which images a move relocated.
    """

    message = Signal(str)
    error = Signal(str)
    files_moved = Signal(object)  # list[tuple[Path, Path]]: (old path, new path)

    def __init__(
        self, results: ResultsModel, runner: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.results = results
        self.runner = runner
        self.last_folder = ""  # where the file dialogs open; the window may set it
        self.table_model = ResultsTableModel(results, self)
        self.sorted_model = QSortFilterProxyModel(self)
        self.sorted_model.setSourceModel(self.table_model)
        self.sorted_model.setSortRole(SortRole)
        self.sorted_model.setDynamicSortFilter(True)
        self.table = QTableView(self)
        self.table.setModel(self.sorted_model)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)  # unsorted (order added) until a header is clicked
        # Fixed starting widths: fitting columns to their contents re-measured every row on
        # every arriving result and froze the window for ~200 ms at a time during a batch.
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(FILE, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        char = self.fontMetrics().horizontalAdvance("m")
        for column, chars in ((LABEL, 18), (CONFIDENCE, 7), (ERROR, 12)):
            header.resizeSection(column, chars * char)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)

        self.export_csv_action = QAction("&Export Results as CSV…", self)
        self.export_csv_action.triggered.connect(self.choose_csv_file)
        self.sort_action = QAction("&Sort into Class Folders…", self)
        self.sort_action.triggered.connect(self.choose_sort_destination)
        self.summary = QLabel(self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(200)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        for action in (self.export_csv_action, self.sort_action):
            button = QToolButton(self)
            button.setDefaultAction(action)
            buttons.addWidget(button)
        buttons.addWidget(self.summary, 1)
        buttons.addWidget(self.progress)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)

        self._sorting: TaskHandle | None = None
        self._last_report = ""
        self._summary_timer = QTimer(self)  # one recount per burst of results, not per result
        self._summary_timer.setSingleShot(True)
        self._summary_timer.setInterval(SUMMARY_DELAY_MS)
        self._summary_timer.timeout.connect(self.update_summary)
        for signal in (results.rowsInserted, results.dataChanged, results.modelReset):
            signal.connect(lambda *_: self._summary_timer.start())
        self._set_busy(None)
        self.update_summary()

    # ----- state --------------------------------------------------------------------------
    def update_summary(self) -> None:
        """Recount the results and enable what can be done with them."""
        rows, done, failed = self.results.counts()
        pending = rows - done - failed
        parts = [f"{rows} images", f"{done} classified"]
        parts += [f"{failed} failed"] if failed else []
        parts += [f"{pending} pending"] if pending else []
        text = " · ".join(parts) if rows else "No images"
        self.summary.setText(text + (f"   —   {self._last_report}" if self._last_report else ""))
        self.export_csv_action.setEnabled(done + failed > 0)
        self.sort_action.setEnabled(done > 0 and self._sorting is None)

    def _set_busy(self, handle: TaskHandle | None) -> None:
        self._sorting = handle
        self.progress.setVisible(handle is not None)
        self.cancel_button.setVisible(handle is not None)
        self.progress.setValue(0)
        self.update_summary()

    def _report(self, text: str) -> None:
        self._last_report = text
        self.update_summary()
        self.message.emit(text)

    def cancel(self) -> None:
        """Stop sorting (files already copied or moved stay where they are)."""
        if self._sorting is not None:
            self._sorting.cancel()

    # ----- export -------------------------------------------------------------------------
    def choose_csv_file(self) -> None:
        """Ask where to save the CSV, then export."""
        start = str(Path(self.last_folder or Path.home()) / "results.csv")
        path, _ = QFileDialog.getSaveFileName(self, "Export Results", start, "CSV (*.csv)")
        if path:
            chosen = Path(path) if Path(path).suffix else Path(path).with_suffix(".csv")
            self.last_folder = str(chosen.parent)
            self.export_csv(chosen)

    def export_csv(self, path: Path | str) -> TaskHandle | None:
        """Write every finished result to ``path`` in the background."""
        path = Path(path)
        rows = [e for e in self.results.entries() if not e.pending]
        pending = self.results.rowCount() - len(rows)
        if not rows:
            self.error.emit("There are no results to export yet")
            return None
        note = f" ({pending} still being classified were left out)" if pending else ""

        def job(_context: TaskContext) -> int:
            return write_csv(rows, path)

        return self.runner.submit(
            "Export CSV",
            job,
            on_result=lambda count: self._report(f"Exported {count} results to {path}{note}"),
            on_error=lambda text: self.error.emit(f"Could not export {path}: {text}"),
        )

    # ----- class folders ------------------------------------------------------------------
    def choose_sort_destination(self) -> None:
        """Ask for a destination folder and copy or move (copy by default), then sort."""
        folder = QFileDialog.getExistingDirectory(
            self, "Sort into Class Folders: choose where the folders go", self.last_folder
        )
        if not folder:
            return
        self.last_folder = folder
        count = len(self._classified())
        box = QMessageBox(self)
        box.setWindowTitle("Sort into Class Folders")
        box.setText(f"Put {count} images into one folder per class inside\n{folder}?")
        box.setInformativeText(
            "Copying leaves the originals where they are. Moving takes them out of their "
            "folders. Existing files are never overwritten."
        )
        copy = box.addButton("Copy", QMessageBox.ButtonRole.AcceptRole)
        move = box.addButton("Move", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(copy)
        box.exec()
        if box.clickedButton() in (copy, move):
            self.sort_into_folders(Path(folder), move=box.clickedButton() is move)

    def _classified(self) -> list[ImageEntry]:
        return [e for e in self.results.entries() if e.top1 is not None and e.error is None]

    def sort_into_folders(self, destination: Path | str, move: bool = False) -> TaskHandle | None:
        """Copy (or move) every classified image into ``destination/<top-1 label>/``."""
        destination = Path(destination)
        entries = self._classified()
        if not entries:
            self.error.emit("There are no classified images to sort yet")
            return None
        if self._sorting is not None:
            self.error.emit("Images are already being sorted")
            return None
        items = [(e.path, e.top1.label) for e in entries if e.top1 is not None]
        left_out = self.results.rowCount() - len(items)
        outcome: list[SortReport] = []

        def job(context: TaskContext) -> SortReport:
            try:
                report = sort_into_class_folders(
                    items, destination, move=move, progress=context.progress, cancel=context.cancel
                )
            except SortCancelled as stopped:
                context.emit(stopped.report)
                raise
            context.emit(report)
            return report

        def finished() -> None:
            cancelled = self._sorting is not None and self._sorting.is_cancelled
            self._set_busy(None)
            if not outcome:  # failed (on_error said why) or stopped before it began
                if cancelled:
                    self._report("Sorting stopped before any image was sorted")
                return
            report = outcome[-1]
            if report.moved:
                self.files_moved.emit(list(report.moved))
            stopped = "Sorting stopped. " if cancelled else ""
            unsorted = f" ({left_out} unclassified images left out)" if left_out else ""
            self._report(f"{stopped}{report.summary(destination)}{unsorted}")
            for source, reason in report.skipped[:MAX_SKIPS_SHOWN]:
                self.error.emit(f"{source}: not sorted, {reason}")
            if len(report.skipped) > MAX_SKIPS_SHOWN:
                self.error.emit(f"…and {len(report.skipped) - MAX_SKIPS_SHOWN} more not sorted")

        handle = self.runner.submit(
            "Sort into class folders",
            job,
            on_item=outcome.append,
            on_progress=lambda fraction, _m: self.progress.setValue(round(fraction * 1000)),
            on_error=lambda text: self.error.emit(f"Could not sort into {destination}: {text}"),
            on_finished=finished,
        )
        self._set_busy(handle)
        return handle
