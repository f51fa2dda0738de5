"""The Review view of the Train tab: suspected label errors, duplicates and outliers of the data
folder, with thumbnails; one click moves a file to the suggested (or a chosen) class folder;
Undo; the log of moves. The review runs on the task runner; nothing is ever deleted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnn_desktop.core.review import (
    Finding,
    Move,
    MoveError,
    ReviewReport,
    move_to_class,
    read_log,
    review_folder,
    undo_last_move,
)
from cnn_desktop.gui.runner import TaskHandle, TaskRunner
from cnn_desktop.gui.widgets.confusion_matrix import THUMBNAIL_SIDE, load_thumbnails

COLUMNS = ("Image", "Kind", "Given", "Suggested", "Score", "")
KIND_TITLES = {"label": "Label?", "duplicate": "Duplicate", "outlier": "Outlier"}


class ReviewPanel(QWidget):
    """Review the data folder ``folder()`` names and fix what it finds."""

    message = Signal(str)
    error = Signal(str)
    data_changed = Signal()  # a file was moved: the folder's scan is out of date

    def __init__(
        self, runner: TaskRunner, folder: Callable[[], str], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.folder = folder
        self.report: ReviewReport | None = None
        self.handle: TaskHandle | None = None
        self.shown: list[Finding] = []
        self._set_aside: dict[Path, list[Finding]] = {}  # findings of moved files, for Undo
        self.start_button = QPushButton("Review data", self)
        self.start_button.setToolTip(
            "Look for images in the wrong class folder, duplicates and outliers"
        )
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar(self, minimum=0, maximum=1000)
        self.status = QLabel("Review the data folder for label errors, copies and outliers.")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setIconSize(QSize(THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        self.table.verticalHeader().setDefaultSectionSize(THUMBNAIL_SIDE + 8)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.target_combo = QComboBox(self)
        self.move_button = QPushButton("Move selected to", self)
        self.move_button.clicked.connect(self._move_selected)
        self.undo_button = QPushButton("Undo last move", self)
        self.undo_button.clicked.connect(self.undo)
        self.log = QListWidget(self)
        self._placeholder = QPixmap(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
        self._placeholder.fill(QColor(128, 128, 128, 60))
        top = QHBoxLayout()
        for widget in (self.start_button, self.cancel_button, self.progress):
            top.addWidget(widget)
        fix = QHBoxLayout()
        for widget in (self.move_button, self.target_combo, self.undo_button):
            fix.addWidget(widget)
        fix.addStretch(1)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.table)
        splitter.addWidget(self.log)
        splitter.setSizes([600, 120])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(splitter, 1)
        layout.addLayout(fix)
        self._update_enabled()

    # ----- the review ---------------------------------------------------------------------
    def start(self) -> TaskHandle | None:
        """Review the data folder in the background (None if none is chosen or one runs)."""
        folder = self.folder().strip()
        if not folder or self.handle is not None:
            return None
        self.report, self.shown, self._set_aside = None, [], {}
        self.table.setRowCount(0)
        self.progress.setValue(0)
        self.status.setText("Reviewing…")
        self.handle = self.runner.submit(
            "Review data",
            lambda context: review_folder(folder, progress=context.progress, cancel=context.cancel),
            key="review",
            on_result=self._reviewed,
            on_progress=self._progressed,
            on_error=self._failed,
            on_finished=self._finished,
        )
        self.handle.cancelled.connect(lambda: self.status.setText("Review cancelled."))
        self._show_log()
        self._update_enabled()
        return self.handle

    def cancel(self) -> None:
        """Stop the review at its next check."""
        if self.handle is not None:
            self.handle.cancel()

    def _progressed(self, fraction: float, text: str) -> None:
        self.progress.setValue(round(fraction * 1000))
        self.status.setText(text)

    def _reviewed(self, report: ReviewReport) -> None:
        self.report = report
        self.progress.setValue(1000)
        counts = ", ".join(f"{n} {kind}" for kind, n in report.counts().items())
        skipped = f"; {len(report.skipped)} file(s) skipped" if report.skipped else ""
        self.status.setText(f"Reviewed {report.images} images: {counts}{skipped}.")
        self.target_combo.clear()
        self.target_combo.addItems(list(report.classes))
        self.shown = list(report.findings)
        self._fill_table()
        self.message.emit(f"Review of {report.root.name}: {len(report.findings)} findings")

    def _failed(self, text: str) -> None:
        self.status.setText(f"Review failed: {text}")
        self.error.emit(f"Review failed: {text}")

    def _finished(self) -> None:
        self.handle = None
        self._update_enabled()

    # ----- the findings -------------------------------------------------------------------
    def _fill_table(self) -> None:
        self.table.setRowCount(len(self.shown))
        for row, finding in enumerate(self.shown):
            name = finding.path.name
            if finding.other is not None:
                name += f"\n= {finding.other.parent.name}/{finding.other.name}"
            image = QTableWidgetItem(QIcon(self._placeholder), name)
            image.setToolTip(str(finding.path))
            image.setData(Qt.ItemDataRole.UserRole, str(finding.path))
            suggested = finding.suggested if finding.suggested != finding.given else ""
            cells = (KIND_TITLES[finding.kind], finding.given, suggested, f"{finding.score:.2f}")
            self.table.setItem(row, 0, image)
            for column, text in enumerate(cells, start=1):
                self.table.setItem(row, column, QTableWidgetItem(text))
            if suggested:
                button = QPushButton(f"Move to {suggested}", self.table)
                button.clicked.connect(lambda _c=False, f=finding: self.move(f.path, f.suggested))
                self.table.setCellWidget(row, 5, button)
        self.table.resizeColumnsToContents()
        paths = list(dict.fromkeys(str(f.path) for f in self.shown))
        self.runner.submit(
            "Review thumbnails",
            load_thumbnails(paths),
            key="review-thumbnails",
            interactive=True,
            on_item=self._set_thumbnail,
        )
        self._update_enabled()

    def _set_thumbnail(self, item: tuple[str, QImage]) -> None:
        path, image = item
        for row in range(self.table.rowCount()):
            cell = self.table.item(row, 0)
            if cell is not None and cell.data(Qt.ItemDataRole.UserRole) == path:
                cell.setIcon(QIcon(QPixmap.fromImage(image)))

    def move_button_of(self, path: Path) -> QPushButton | None:
        """The *Move to …* button of the first finding about ``path`` (None if it has none)."""
        for row, finding in enumerate(self.shown):
            if finding.path == path:
                widget = self.table.cellWidget(row, 5)
                return widget if isinstance(widget, QPushButton) else None
        return None

    # ----- moving files -------------------------------------------------------------------
    def move(self, path: Path, label: str) -> Move | None:
        """Move ``path`` into the class folder ``label``; its findings leave the list."""
        if self.report is None:
            return None
        try:
            move = move_to_class(self.report.root, path, label)
        except (MoveError, OSError) as exc:
            self.error.emit(f"Not moved: {exc}")
            return None
        self._set_aside[move.target] = [f for f in self.shown if f.path == path]
        self.shown = [f for f in self.shown if f.path != path]
        self._fill_table()
        self._after_change(f"Moved {path.name} from {move.from_class} to {move.to_class}")
        return move

    def _move_selected(self) -> None:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        label = self.target_combo.currentText()
        for path in list(dict.fromkeys(self.shown[row].path for row in rows)):
            self.move(path, label)

    def undo(self) -> Move | None:
        """Move the latest moved file back; its findings return to the list."""
        if self.report is None:
            return None
        try:
            move = undo_last_move(self.report.root)
        except (MoveError, OSError) as exc:
            self.error.emit(f"Cannot undo: {exc}")
            return None
        if move is None:
            self.message.emit("Nothing to undo.")
            return None
        restored = [replace(f, path=move.target) for f in self._set_aside.pop(move.source, [])]
        if restored:
            self.shown = sorted([*self.shown, *restored], key=lambda f: -f.score)
            self._fill_table()
        self._after_change(f"Moved {move.source.name} back to {move.to_class}")
        return move

    def _after_change(self, text: str) -> None:
        self._show_log()
        self.message.emit(text)
        self.data_changed.emit()

    def _show_log(self) -> None:
        folder = self.report.root if self.report is not None else Path(self.folder())
        self.log.clear()
        for entry in reversed(read_log(folder)):
            verb = "moved" if entry["action"] == "move" else "undone"
            self.log.addItem(
                f"{entry.get('time', '')}  {verb}: {entry['source']} → {entry['target']}"
            )

    def _update_enabled(self) -> None:
        running = self.handle is not None
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        has_report = self.report is not None
        self.move_button.setEnabled(has_report and bool(self.shown))
        self.undo_button.setEnabled(has_report)


def results_and_review(train_panel) -> QTabWidget:
    """The Train tab's lower half: the run's results and the Review view, as two tabs. The
    review works on the tab's data folder, reports through its notifications, and a move makes
    the tab scan the folder again (unless a training run is using it)."""
    review = ReviewPanel(train_panel.runner, train_panel.folder_edit.text, train_panel)
    review.message.connect(train_panel.message)
    review.error.connect(train_panel.error)

    def rescan() -> None:
        if train_panel.handle is None:
            train_panel.set_data_folder(train_panel.folder_edit.text())

    review.data_changed.connect(rescan)
    tabs = QTabWidget(train_panel)
    tabs.addTab(train_panel.results, "Results")
    tabs.addTab(review, "Review data")
    return tabs
