"""The Train tab: pick a folder of class folders and a mode, watch the curves, judge the model
(accuracy, verified export, per-class figures, confusion matrix); slow work on the runner."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_desktop.core.models import ARCHITECTURES, SCRATCH_ARCHITECTURES, ModelSpec, choose_input
from cnn_desktop.core.training import (
    DEFAULTS,
    ScanReport,
    TrainConfig,
    TrainEvent,
    TrainResult,
    make_split,
    scan_folder,
)
from cnn_desktop.gui import train_outcome as outcome
from cnn_desktop.gui.class_maps_panel import add_class_maps
from cnn_desktop.gui.review_panel import results_and_review
from cnn_desktop.gui.runner import TaskHandle, TaskRunner
from cnn_desktop.gui.state import Settings
from cnn_desktop.gui.sweep_dialog import add_sweep_button
from cnn_desktop.gui.widgets.augment_preview import AugmentationChooser, preview_spec
from cnn_desktop.gui.widgets.reliability_diagram import ResultsWithCalibration
from cnn_desktop.gui.widgets.training_curves import TrainingProgress, run_training

MODE_TITLES = {"head": "Head only — fast", "full": "Full fine-tune", "scratch": "From scratch"}
HEAD_NO_AUGMENT = "Head-only training learns from cached embeddings: augmentation does not apply."
ERROR_STYLE = "color: #c62828;"
Run = dict | None  # a run record (see cnn_desktop.core.runs)
WARNING_STYLE = "color: #b26a00;"


class TrainPanel(QWidget):
    """Train a classifier on a folder of class sub-folders and judge the result."""

    use_model = Signal(str)  # a bundle path: make it the window's active model
    show_image = Signal(str, int)  # an image path and the class (index) it was predicted as
    message = Signal(str)
    error = Signal(str)
    run_ended = Signal()  # a training ended (finished, cancelled or failed): it is recorded

    def __init__(
        self, runner: TaskRunner, settings: Settings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.settings = settings
        self.report: ScanReport | None = None
        self.result: TrainResult | None = None
        self.handle: TaskHandle | None = None
        self.setAcceptDrops(True)
        left = QWidget(self)
        column = QVBoxLayout(left)
        column.addWidget(self._build_data())
        column.addWidget(self._build_options())
        column.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(left)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(
            left.sizeHint().width() + scroll.verticalScrollBar().sizeHint().width()
        )
        right = QSplitter(Qt.Orientation.Vertical, self)
        self.start_button = QPushButton("Start training", self, clicked=self.start)
        self.cancel_button = QPushButton("Cancel", self, clicked=self.cancel)
        self.cancel_button.setToolTip("Stop after the current step and save the best model so far")
        self.run_view = TrainingProgress(self)
        for button in (self.start_button, self.cancel_button):
            self.run_view.buttons.addWidget(button)
        self.sweep_button = add_sweep_button(self)
        self.run_view.set_status("Choose a data folder, then start.")
        right.addWidget(self.run_view)
        self.results = ResultsWithCalibration(runner, self)  # with the reliability diagram
        for name in ("show_image", "message", "error"):
            getattr(self.results, name).connect(getattr(self, name))
        self.results.use_model.connect(self._use_requested)
        right.addWidget(results_and_review(self))
        self.class_maps = add_class_maps(self, right)  # per-class mean maps once evaluated
        splitter = QSplitter(self)
        splitter.addWidget(scroll)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([scroll.minimumWidth(), 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        self._restore()

    def _build_data(self) -> QGroupBox:
        box = QGroupBox("Data: one sub-folder of images per class", self)
        self.folder_edit = QLineEdit(box, placeholderText="Choose or drop a folder…")
        self.folder_edit.returnPressed.connect(
            lambda: self.set_data_folder(self.folder_edit.text())
        )
        self.choose_button = QPushButton("Choose…", box, clicked=self._choose_folder)
        self.scan_label = QLabel(box, wordWrap=True)
        self.class_table = QTableWidget(0, 2, box, maximumHeight=140)
        self.class_table.setHorizontalHeaderLabels(["Class", "Images"])
        self.class_table.horizontalHeader().setStretchLastSection(True)
        self.class_table.verticalHeader().setVisible(False)
        self.class_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.skipped_label = QLabel(box, wordWrap=True)
        self.skipped_list = QListWidget(box, maximumHeight=80)
        self.warnings_label = QLabel(box, wordWrap=True)
        self.warnings_label.setStyleSheet(WARNING_STYLE)
        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.choose_button)
        layout = QVBoxLayout(box)
        layout.addLayout(row)
        for widget in (self.scan_label, self.class_table, self.skipped_label, self.skipped_list):
            layout.addWidget(widget)
        layout.addWidget(self.warnings_label)
        return box

    def _build_options(self) -> QGroupBox:
        box = QGroupBox("Options", self)
        self.options = box
        self.mode_combo = QComboBox(box)
        for mode, title in MODE_TITLES.items():
            self.mode_combo.addItem(title, mode)
        outcome.disable_modes_without_torch(self.mode_combo)
        self.arch_combo = QComboBox(box)
        for name in SCRATCH_ARCHITECTURES:
            self.arch_combo.addItem(ARCHITECTURES[name].title, name)
        self.arch_combo.setCurrentIndex(SCRATCH_ARCHITECTURES.index("resnet18"))
        self.epochs_spin = QSpinBox(box, minimum=1, maximum=1000)
        self.batch_spin = QSpinBox(box, minimum=1, maximum=1024)
        self.lr_spin = QDoubleSpinBox(box, decimals=5, minimum=1e-5, maximum=1.0, singleStep=1e-4)
        self.val_spin = QSpinBox(box, minimum=5, maximum=50, value=20, suffix=" %")
        self.size_spin = QSpinBox(box, minimum=0, maximum=512, suffix=" px")
        self.size_spin.setSpecialValueText("automatic")
        self.seed_spin = QSpinBox(box, minimum=0, maximum=2**31 - 1)
        self.augment = AugmentationChooser(self.runner, self._preview_source, box)
        self.output = outcome.OutputChooser(box)
        self.output_edit = self.output.edit
        form = QFormLayout(box)
        for label, field in (
            ("Mode", self.mode_combo), ("Architecture", self.arch_combo),
            ("Epochs", self.epochs_spin), ("Batch size", self.batch_spin),
            ("Learning rate", self.lr_spin), ("Validation", self.val_spin),
            ("Image size", self.size_spin), ("Seed", self.seed_spin),
            ("Augmentation", self.augment), ("Save to", self.output),
        ):  # fmt: skip
            form.addRow(label, field)
        self.mode_combo.currentIndexChanged.connect(lambda _i: self._mode_changed())
        for widget in (self.arch_combo, self.size_spin, self.val_spin, self.seed_spin):
            signal = getattr(widget, "currentIndexChanged", None) or widget.valueChanged
            signal.connect(lambda _v: self.augment.refresh())
        self.epochs_spin.valueChanged.connect(
            lambda value: self.settings.qsettings.setValue("train/epochs", value)
        )
        return box

    # ----- data ---------------------------------------------------------------------------
    def set_data_folder(self, path: str | os.PathLike[str]) -> TaskHandle:
        """Use ``path`` as the training data: scan it in the background and show the report."""
        folder = str(Path(path).expanduser())
        self.folder_edit.setText(folder)
        self.settings.qsettings.setValue("train/data_folder", folder)
        self.output.suggest_for(folder)
        self._show_report(None, "Scanning…")
        return self.runner.submit(
            "Scan training data",
            lambda context: scan_folder(folder, progress=context.progress, cancel=context.cancel),
            key="scan",
            on_result=lambda report: self._scanned(folder, report),
            on_progress=lambda _f, text: self._scanned(folder, None, text, done=False),
            on_error=lambda text: self._scanned(folder, None, text),
        )

    def _scanned(
        self, folder: str, report: ScanReport | None, text: str = "", done: bool = True
    ) -> None:
        if folder == self.folder_edit.text() and not done:
            self.scan_label.setText(text)
        elif folder == self.folder_edit.text():  # not an older scan finishing late
            self._show_report(report, text, failed=report is None)
            self.augment.refresh()
            if self.handle is None:
                self.run_view.set_status("Ready to train." if report else "Fix the data first.")

    def _show_report(self, report: ScanReport | None, text: str = "", failed: bool = False) -> None:
        self.report = report
        counts = report.counts() if report else {}
        self.class_table.setRowCount(len(counts))
        for row, (name, count) in enumerate(counts.items()):
            self.class_table.setItem(row, 0, QTableWidgetItem(name))
            self.class_table.setItem(row, 1, QTableWidgetItem(str(count)))
        if report is not None:
            kind = "one folder per class" if report.layout == "folders" else "train/val folders"
            text = f"{len(report.classes)} classes, {report.total} images ({kind})"
        self.scan_label.setText(text or "Choose or drop a folder with one sub-folder per class.")
        self.scan_label.setStyleSheet(ERROR_STYLE if failed else "")
        skipped = report.skipped if report else []
        self.skipped_label.setText(f"{len(skipped)} file(s) skipped:")
        self.skipped_list.clear()
        self.skipped_list.addItems([f"{path.name}: {reason}" for path, reason in skipped])
        self.warnings_label.setText(
            "\n".join(f"⚠ {w}" for w in (report.warnings if report else []))
        )
        self.class_table.setVisible(bool(counts))
        for widget in (self.skipped_label, self.skipped_list):
            widget.setVisible(bool(skipped))
        self.warnings_label.setVisible(bool(self.warnings_label.text()))
        self._update_enabled()

    def _choose_folder(self) -> None:
        start = self.folder_edit.text() or self.settings.last_folder
        folder = QFileDialog.getExistingDirectory(self, "Choose the training data folder", start)
        if folder:
            self.set_data_folder(folder)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if outcome.dropped_folder(event) and self.handle is None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folder = outcome.dropped_folder(event)
        if folder and self.handle is None:
            event.acceptProposedAction()
            self.set_data_folder(folder)

    # ----- options ------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """``head``, ``full`` or ``scratch``."""
        return str(self.mode_combo.currentData())

    def _mode_changed(self) -> None:
        defaults = DEFAULTS[self.mode]
        self.settings.qsettings.setValue("train/mode", self.mode)
        self.epochs_spin.setValue(defaults["epochs"])
        self.batch_spin.setValue(defaults["batch_size"])
        self.lr_spin.setValue(defaults["lr"])
        self.augment.set_checked(defaults["augment"])
        self.augment.set_applicable(self.mode != "head", HEAD_NO_AUGMENT)
        self._update_enabled()

    def config(self) -> TrainConfig:
        """The options as chosen."""
        scratch = self.mode == "scratch"
        return TrainConfig(
            mode=self.mode,
            arch=str(self.arch_combo.currentData()) if scratch else None,
            epochs=self.epochs_spin.value(),
            batch_size=self.batch_spin.value(),
            lr=self.lr_spin.value(),
            val_split=self.val_spin.value() / 100,
            img_size=(self.size_spin.value() or None) if scratch else None,
            augment=self.augment.names(),
            seed=self.seed_spin.value(),
        )

    def _preview_source(self) -> tuple[Path, ModelSpec] | None:
        """The first training image and the spec the preview imitates."""
        if self.report is None:
            return None
        split = make_split(self.report, self.val_spin.value() / 100, self.seed_spin.value())
        arch, size = str(self.arch_combo.currentData()), self.size_spin.value()
        items = split.train or split.val
        if self.mode == "scratch":
            size, _ = choose_input(arch, [path for path, _ in items], size)
        spec = preview_spec(self.mode, arch, self.report.classes, size)
        return items[0][0], spec

    # ----- training -----------------------------------------------------------------------
    def start(self) -> TaskHandle | None:
        """Train with the chosen options in the background (None if it cannot start)."""
        report = self.report
        if report is None or self.handle is not None:
            return None
        data = str(report.root)
        out = self.output.path_for_run(data)
        if out is None:
            self.run_view.set_status("Not started: choose another name under Save to.")
            return None
        config = self.config()
        self.settings.qsettings.setValue("train/epochs", config.epochs)
        return self.train(data, out, config)

    def train(self, data: str, out: str, config: TrainConfig, rerun: Run = None) -> TaskHandle:
        """Train ``config`` on ``data`` into ``out``; ``rerun``: the run record repeated."""
        self.result = None
        self.results.clear()
        outcome.describe_use_button(self.results.use_button, None)
        self.run_view.reset("Starting…")
        uri = self.settings.tracking_uri or None  # MLflow too, when the Runs tab names a store
        self.handle = self.runner.submit(
            "Training",
            lambda context: run_training(context, data, out, config, rerun, uri),
            key="train",
            on_item=self._on_event,
            on_error=self._failed,
            on_finished=self._finished,
        )
        self.handle.cancelled.connect(self._cancelled)
        self.class_maps.follow(self.handle)
        self._update_enabled()
        return self.handle

    def cancel(self) -> None:
        """Stop training at the next step; the best model so far is saved."""
        if self.handle is not None:
            self.handle.cancel()
            self.run_view.set_status("Cancelling: saving the best model so far…")

    def _on_event(self, event: TrainEvent) -> None:
        if event.kind not in ("done", "cancelled") or event.result is None:
            self.run_view.show_event(event)
            if event.kind == "notice":  # the run goes on, differently (e.g. a smaller batch)
                self.message.emit(event.message)
            return
        result = self.result = event.result
        cancelled = event.kind == "cancelled"
        self.run_view.progress.setValue(1000)
        prefix = "Training cancelled: the best model so far was saved. " if cancelled else ""
        self.run_view.set_status(prefix + event.message, failed=not result.export_verified)
        self.results.show_result(result, cancelled=cancelled)
        outcome.describe_use_button(self.results.use_button, result)
        self.message.emit(prefix + event.message)

    def _use_requested(self, path: str) -> None:
        """*Use this model* (asking first when its export check did not pass)."""
        unverified = self.result is not None and not self.result.export_verified
        if unverified and not outcome.confirm_unverified(self, path):
            return
        self.use_model.emit(path)
        self.message.emit(f"Opening {path} as the active model…")

    def _cancelled(self) -> None:
        if self.result is None:
            self.run_view.set_status("Training cancelled before an epoch ended; nothing saved.")
            self.message.emit("Training cancelled before an epoch ended; no model was saved.")

    def _failed(self, text: str) -> None:
        self.run_view.set_status(f"Training failed: {text}", failed=True)
        self.error.emit(f"Training failed: {text}")

    def _finished(self) -> None:
        self.handle = None
        self._update_enabled()
        self.run_ended.emit()

    def _update_enabled(self) -> None:
        running = self.handle is not None
        self.start_button.setEnabled(self.report is not None and not running)
        self.cancel_button.setEnabled(running)
        for widget in (self.options, self.folder_edit, self.choose_button):
            widget.setEnabled(not running)
        for scratch_only in (self.arch_combo, self.size_spin):
            scratch_only.setEnabled(self.mode == "scratch")

    # ----- settings -----------------------------------------------------------------------
    def _restore(self) -> None:
        values = self.settings.qsettings
        mode = outcome.usable_mode(str(values.value("train/mode", "head")), MODE_TITLES)
        epochs = values.value("train/epochs")
        self.mode_combo.setCurrentIndex(self.mode_combo.findData(mode, Qt.ItemDataRole.UserRole))
        self._mode_changed()  # also when the index did not change
        if epochs is not None and str(epochs).isdigit():
            self.epochs_spin.setValue(int(epochs))
        folder = str(values.value("train/data_folder", "") or "")
        self.folder_edit.setText(folder)
        if folder:
            self.output.suggest_for(folder)
        self._show_report(None)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        folder = self.folder_edit.text().strip()
        idle = self.report is None and not any(h.key == "scan" for h in self.runner.active)
        if idle and folder and Path(folder).is_dir():
            self.set_data_folder(folder)  # the last data folder, scanned on first show
