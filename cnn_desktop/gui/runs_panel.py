"""The Runs tab: every recorded training run in a sortable, filterable table (by default the
runs of the Train tab's data folder, so reopening a folder brings its history back); two or
more selected runs overlaid as curves with what differs in their config; Re-run, Open model
and Delete. The store is read on the runner (it is small: a rescan when the tab is shown and
when a training ends)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QColor, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_desktop.core.runs import RunStore, compare_runs, value_text
from cnn_desktop.gui import train_outcome as outcome
from cnn_desktop.gui.runner import TaskHandle, TaskRunner
from cnn_desktop.gui.runs_actions import Deleted, ask_delete, delete_runs
from cnn_desktop.gui.runs_model import (
    COLUMN,
    RecordRole,
    RunsFilterModel,
    RunsTableModel,
    data_folder,
)
from cnn_desktop.gui.state import Settings
from cnn_desktop.gui.widgets.run_curves import RunCurves, run_colour

TRACKING_TIP = (
    "Also record the window's training runs in this MLflow tracking store: "
    "sqlite:///path/mlflow.db, or a team's http://server:5000. Empty: MLFLOW_TRACKING_URI "
    "when it is set, else only the local records this tab lists."
)
COMPARE_HINT = "Select two or more runs (Ctrl- or Shift-click) to compare their curves and config."
DIFF_SECTIONS = ("config", "data", "environment")


def read_store(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every readable record under ``root``, newest first, and one sentence per record that
    could not be read (and was set aside): the rescan job."""
    store = RunStore(root)
    records = store.runs()
    return records, list(store.problems)


class RunsPanel(QWidget):
    """The recorded runs: browse, compare, repeat, open and delete them."""

    use_model = Signal(str)  # a bundle path: make it the window's active model
    rerun = Signal(object)  # a run record: repeat it in the Train tab
    message = Signal(str)
    error = Signal(str)

    def __init__(
        self,
        runner: TaskRunner,
        settings: Settings,
        store: RunStore | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.settings = settings
        self.store = store or RunStore()
        self._reported: set[str] = set()  # store problems already shown (each only once)
        self._train_folder = ""
        self.source = RunsTableModel(self)
        self.proxy = RunsFilterModel(self)
        self.proxy.setSourceModel(self.source)
        self.folder_check = QCheckBox(self, checked=True)
        self.folder_check.toggled.connect(lambda _on: self._apply_folder())
        self.search_edit = QLineEdit(self, clearButtonEnabled=True)
        self.search_edit.setPlaceholderText("Filter: status, architecture, tag, run id…")
        self.search_edit.textChanged.connect(self._search)
        self.count_label = QLabel(self)
        self.table = self._build_table()
        self.rerun_button = QPushButton("Re-run", self, clicked=self._rerun_clicked)
        self.rerun_button.setToolTip("Train again in the Train tab: same config, seed and data")
        self.open_button = QPushButton("Open model", self, clicked=self._open_clicked)
        self.open_button.setToolTip("Classify with this run's model from now on")
        self.delete_button = QPushButton("Delete…", self, clicked=self._delete_clicked)
        self.delete_button.setToolTip("Delete the selected runs' records (asks first)")
        self.compare_label = QLabel(COMPARE_HINT, self, wordWrap=True)
        self.tracking_edit = QLineEdit(settings.tracking_uri, self, clearButtonEnabled=True)
        self.tracking_edit.setPlaceholderText("none: local records only")
        self.tracking_edit.setToolTip(TRACKING_TIP)
        self.tracking_edit.setMinimumWidth(300)
        self.tracking_edit.editingFinished.connect(self._tracking_changed)
        self.curves = RunCurves(self)
        self.diff_table = QTableWidget(0, 0, self)
        self.diff_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.diff_table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.diff_table.horizontalHeader().setStretchLastSection(True)
        self.diff_table.verticalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self._lay_out()
        self.set_train_folder("")
        self._selection_changed()

    # ----- layout -------------------------------------------------------------------------
    def _build_table(self) -> QTableView:
        table = QTableView(self)
        table.setModel(self.proxy)
        table.setSortingEnabled(True)
        table.sortByColumn(COLUMN["Started"], Qt.SortOrder.DescendingOrder)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        table.setAlternatingRowColors(True)
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setStretchLastSection(True)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        table.doubleClicked.connect(lambda _index: self._open_clicked())
        return table

    def _lay_out(self) -> None:
        filters = QHBoxLayout()
        filters.addWidget(self.folder_check)
        filters.addWidget(self.search_edit, 1)
        filters.addWidget(self.count_label)
        buttons = QHBoxLayout()
        for button in (self.rerun_button, self.open_button, self.delete_button):
            buttons.addWidget(button)
        buttons.addWidget(self.compare_label, 1)
        buttons.addWidget(QLabel("MLflow tracking URI:", self))
        buttons.addWidget(self.tracking_edit)
        top = QWidget(self)
        column = QVBoxLayout(top)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(filters)
        column.addWidget(self.table, 1)
        column.addLayout(buttons)
        comparison = QSplitter(self)
        comparison.addWidget(self.curves)
        comparison.addWidget(self.diff_table)
        comparison.setStretchFactor(0, 3)
        comparison.setStretchFactor(1, 2)
        comparison.setSizes([880, 500])
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(top)
        splitter.addWidget(comparison)
        splitter.setSizes([270, 530])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

    # ----- what is listed -----------------------------------------------------------------
    def set_train_folder(self, folder: str) -> None:
        """The Train tab's data folder: by default only its runs are listed."""
        self._train_folder = folder.strip()
        name = Path(self._train_folder).name if self._train_folder else ""
        self.folder_check.setText(
            f"Only runs of {name}" if name else "Only the Train tab's data folder (none chosen)"
        )
        self.folder_check.setToolTip(self._train_folder)
        self.folder_check.setEnabled(bool(name))
        self._apply_folder()

    def _apply_folder(self) -> None:
        only = self.folder_check.isChecked() and bool(self._train_folder)
        self.proxy.set_folder(self._train_folder if only else None)
        self._listing_changed()

    def _search(self, text: str) -> None:
        self.proxy.set_text(text)
        self._listing_changed()

    def refresh(self) -> TaskHandle:
        """Read the store again in the background (the selection is kept)."""
        return self.runner.submit(
            "Read the run records",
            lambda _context, root=self.store.root: read_store(root),
            key="runs-scan",
            interactive=True,
            on_result=lambda found: self._show_records(*found),
        )

    def _show_records(self, records: list[dict[str, Any]], problems: list[str]) -> None:
        selected = {str(r.get("id")) for r in self.selected_records()}
        self.source.set_records(records)
        selection = QItemSelection()
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if str(index.data(RecordRole).get("id")) in selected:
                selection.select(index, index)
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        self.table.selectionModel().select(selection, flags)
        self._listing_changed()
        for problem in problems:
            if problem not in self._reported:
                self._reported.add(problem)
                self.error.emit(problem)

    def _listing_changed(self) -> None:
        shown, total = self.proxy.rowCount(), self.source.rowCount()
        folder = self.proxy.folder
        if total == 0:
            text = "No runs recorded yet: train one in the Train tab."
        elif shown == 0 and folder and not self.search_edit.text().strip():
            text = f"No runs of {Path(folder).name} yet (of {total} runs)."
        else:
            text = f"{shown} of {total} runs"
        self.count_label.setText(text)
        self._selection_changed()

    def selected_records(self) -> list[dict[str, Any]]:
        """The records of the selected rows, in the table's order."""
        rows = sorted(index.row() for index in self.table.selectionModel().selectedRows())
        return [self.proxy.index(row, 0).data(RecordRole) for row in rows]

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    # ----- comparison ---------------------------------------------------------------------
    def _selection_changed(self) -> None:
        records = self.selected_records()
        one = records[0] if len(records) == 1 else None
        self.rerun_button.setEnabled(one is not None and bool(data_folder(one)))
        self.open_button.setEnabled(one is not None and bool(one.get("bundle")))
        self.delete_button.setEnabled(bool(records))
        self.curves.show_runs(records, legend_labels(records))
        self._show_differences(records)

    def _show_differences(self, records: list[dict[str, Any]]) -> None:
        table = self.diff_table
        table.clear()
        if len(records) < 2:
            table.setRowCount(0)
            table.setColumnCount(0)
            self.compare_label.setText(COMPARE_HINT)
            return
        comparison = compare_runs(records)
        rows = [
            (key if section == "config" else f"{section}: {key}", values)
            for section in DIFF_SECTIONS
            for key, values in comparison[section].items()
        ]
        table.setColumnCount(len(records))
        table.setRowCount(len(rows))
        for position, run_id in enumerate(comparison["runs"]):
            header = QTableWidgetItem(run_id)
            header.setForeground(QColor(run_colour(position)))
            table.setHorizontalHeaderItem(position, header)
        for row, (key, values) in enumerate(rows):
            table.setVerticalHeaderItem(row, QTableWidgetItem(key))
            for position, value in enumerate(values):
                table.setItem(row, position, QTableWidgetItem(value_text(value, ", ")))
        differing = [key for key in comparison["config"]]
        self.compare_label.setText(
            f"{len(records)} runs: their config differs in {', '.join(differing)}"
            if differing
            else f"{len(records)} runs with the same config"
        )

    def differing_keys(self) -> list[str]:
        """The rows of the comparison table (config keys; ``data: …``, ``environment: …``)."""
        table = self.diff_table
        return [table.verticalHeaderItem(row).text() for row in range(table.rowCount())]

    # ----- buttons ------------------------------------------------------------------------
    def _tracking_changed(self) -> None:
        uri = self.tracking_edit.text().strip()
        if uri != self.settings.tracking_uri:
            self.settings.tracking_uri = uri
            where = f"also in the MLflow store {uri}" if uri else "locally only"
            self.message.emit(f"The window's training runs are recorded {where} from now on.")

    def _rerun_clicked(self) -> None:
        records = self.selected_records()
        if len(records) == 1:
            self.rerun.emit(records[0])

    def _open_clicked(self) -> None:
        records = self.selected_records()
        if len(records) != 1:
            return
        record = records[0]
        bundle = record.get("bundle")
        if not bundle or not Path(bundle).exists():
            self.error.emit(
                f"Run {record['id']}'s model is not there any more: {bundle or 'none was saved'}"
            )
            return
        verified = (record.get("metrics") or {}).get("export_verified")
        if verified is False and not outcome.confirm_unverified(self, bundle):
            return
        self.use_model.emit(bundle)
        self.message.emit(f"Opening {bundle} (run {record['id']}) as the active model…")

    def _delete_clicked(self) -> None:
        records = self.selected_records()
        if not records:
            return
        with_bundles = ask_delete(self, records)
        if with_bundles is None:
            return
        self.runner.submit(
            "Delete runs",
            lambda _context, root=self.store.root: delete_runs(root, records, with_bundles),
            key="runs-delete",
            on_result=self._deleted,
        )

    def _deleted(self, done: Deleted) -> None:
        if done.runs:
            models = f" and {len(done.bundles)} model(s): {', '.join(done.bundles)}"
            self.message.emit(f"Deleted {len(done.runs)} run(s)" + (models if done.bundles else ""))
        for problem in done.problems:
            self.error.emit(problem)
        self.refresh()


def legend_labels(records: list[dict[str, Any]]) -> list[str]:
    """Each run's name in the curves' legend: its start time and the config values that set
    it apart from the other runs shown (``02:18:45 · lr 0.3, epochs 3``)."""
    differing = compare_runs(records)["config"] if len(records) > 1 else {}
    labels = []
    for position, record in enumerate(records):
        run_id = str(record.get("id"))
        when = run_id[9:15]
        name = f"{when[:2]}:{when[2:4]}:{when[4:]}" if when.isdigit() else run_id
        values = [
            f"{key} {value_text(column[position], ', ')}" for key, column in differing.items()
        ]
        labels.append(" · ".join([name, ", ".join(values[:3])]) if values else name)
    return labels
