"""The main window: a gallery of dropped images, what the model thinks of each, and why."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QModelIndex, Qt
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QLabel,
    QListView,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnn_desktop.core.bundle import BUNDLE_SUFFIX
from cnn_desktop.gui import jobs
from cnn_desktop.gui.batch_panel import BatchPanel
from cnn_desktop.gui.commands import WindowCommands
from cnn_desktop.gui.explain_panel import ExplainPanel
from cnn_desktop.gui.gallery_filter import GalleryFilterBar, GalleryFilterModel
from cnn_desktop.gui.menus import build_menus
from cnn_desktop.gui.results_model import EntryRole, ImageEntry, ResultsModel
from cnn_desktop.gui.runner import TaskHandle, TaskRunner
from cnn_desktop.gui.state import ActiveModel, Settings
from cnn_desktop.gui.train_panel import TrainPanel
from cnn_desktop.gui.widgets.gallery_delegate import GalleryDelegate
from cnn_desktop.gui.widgets.notifications import NotificationArea

EMPTY_HINT = (
    "Drop images or folders here\n\n"
    "or use File → Open Images… (Ctrl+O), File → Open Folder… (Ctrl+Shift+O),\n"
    "or paste an image (Ctrl+V)"
)
PAGES = {"gallery": 0, "table": 1}


class MainWindow(WindowCommands, QMainWindow):
    """Gallery of classified images; the selected one's classes, feature maps and CAM."""

    def __init__(self, settings: Settings | None = None, model_path: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle("cnn-desktop")
        self.setAcceptDrops(True)
        self.settings = settings or Settings()
        self.runner = TaskRunner(parent=self)
        self.runner.task_failed.connect(
            lambda title, msg: self.notifications.error(f"{title}: {msg}")
        )
        self.results = ResultsModel(self)
        self.active_model: ActiveModel | None = None
        self._model_path: str | None = model_path
        self._device_in_use = self.settings.device  # the device choice the active model runs on
        self._waiting_inputs: list[Path] = []
        self._focus: tuple[Path, int] | None = None  # image to show with a CAM once classified
        self._classify_tasks: set[TaskHandle] = set()
        # Bumped by "Clear": results still queued from older batches are dropped.
        self._generation = 0
        self._build_ui()
        self.actions_ = build_menus(self)
        self._sync_backend_actions()
        self._restore_geometry()
        self.open_model(model_path)

    # ----- layout -------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.notifications = NotificationArea(self)
        self.filter_model = GalleryFilterModel(self)
        self.filter_model.setSourceModel(self.results)
        self.filter_bar = GalleryFilterBar(self.filter_model, self)
        self.gallery = QListView(self)
        self.gallery.setModel(self.filter_model)
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery_delegate = GalleryDelegate(jobs.THUMBNAIL_SIZE, self.gallery)
        self.gallery.setItemDelegate(self.gallery_delegate)
        self.gallery.setGridSize(self.gallery_delegate.tile_size())
        self.gallery.setResizeMode(QListView.ResizeMode.Adjust)
        self.gallery.setUniformItemSizes(True)
        self.gallery.setSpacing(4)
        self.gallery.setMovement(QListView.Movement.Static)
        self.gallery.setLayoutMode(QListView.LayoutMode.Batched)
        self.gallery.setBatchSize(200)
        self.gallery.selectionModel().currentChanged.connect(lambda *_: self._show_selected())
        self.results.dataChanged.connect(self._on_results_changed)

        gallery_page = QWidget(self)
        gallery_layout = QVBoxLayout(gallery_page)
        gallery_layout.setContentsMargins(0, 0, 0, 0)
        gallery_layout.addWidget(self.filter_bar)
        gallery_layout.addWidget(self.gallery, 1)
        self.batch_panel = BatchPanel(self.results, self.runner, self)
        self.batch_panel.message.connect(self.notifications.info)
        self.batch_panel.error.connect(self.notifications.error)
        self.batch_panel.files_moved.connect(
            lambda pairs: [self.results.relocate(old, new) for old, new in pairs]
        )
        self.batch_panel.export_csv_action.setShortcut("Ctrl+E")
        self.batch_panel.sort_action.setShortcut("Ctrl+Shift+E")
        self.batch_panel.last_folder = self.settings.last_folder
        self.left_tabs = QTabWidget(self)
        self.left_tabs.addTab(gallery_page, "Gallery")
        self.left_tabs.addTab(self.batch_panel, "Results Table")

        self.explain = ExplainPanel(self.runner, self.settings, self)
        self.bars = self.explain.bars

        splitter = QSplitter(self)
        splitter.addWidget(self.left_tabs)
        splitter.addWidget(self.explain)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([700, 580])
        self.splitter = splitter

        self.empty_state = QLabel(EMPTY_HINT, self)
        self.empty_state.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_state.setStyleSheet("font-size: 17px; color: palette(placeholder-text);")
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.empty_state)
        self.pages.addWidget(splitter)

        self.train_panel = TrainPanel(self.runner, self.settings, self)
        self.train_panel.message.connect(self.notifications.info)
        self.train_panel.error.connect(self.notifications.error)
        self.train_panel.use_model.connect(self.open_model)
        self.train_panel.show_image.connect(self.show_image_with_cam)
        self.mode_tabs = QTabWidget(self)
        self.mode_tabs.setDocumentMode(True)
        self.mode_tabs.addTab(self.pages, "Classify")
        self.mode_tabs.addTab(self.train_panel, "Train")

        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notifications)
        layout.addWidget(self.mode_tabs, 1)
        self.setCentralWidget(central)

        self.model_label = QLabel("Loading model…", self)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(220)
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.progress_label = QLabel(self)
        self.progress_label.setVisible(False)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_classification)
        self.statusBar().addWidget(self.model_label, 1)
        self.statusBar().addPermanentWidget(self.progress_label)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)

    def batch_actions(self) -> list[QAction]:
        """Results-table actions for the File menu."""
        return [self.batch_panel.export_csv_action, self.batch_panel.sort_action]

    def show_page(self, name: str) -> None:
        """Show the gallery or the results table."""
        self.mode_tabs.setCurrentIndex(0)
        self.pages.setCurrentIndex(1)
        self.left_tabs.setCurrentIndex(PAGES[name])

    def show_detail(self, name: str) -> None:
        """Show the prediction, feature-map or model tab of the right panel."""
        self.mode_tabs.setCurrentIndex(0)
        self.pages.setCurrentIndex(1)
        self.explain.show_tab(name)

    def show_training(self) -> None:
        """Show the Train tab."""
        self.mode_tabs.setCurrentIndex(1)

    def show_image_with_cam(self, path: str, class_index: int) -> None:
        """Classify one image with the active model and show its CAM for ``class_index``."""
        self.mode_tabs.setCurrentIndex(0)
        self._focus = (Path(path), class_index)
        self.add_inputs([Path(path)])

    # ----- model --------------------------------------------------------------------------
    def open_model(self, path: str | None) -> TaskHandle:
        """Load a model bundle / .onnx (None: the built-in model) in the background."""
        self.model_label.setText(f"Loading {Path(path).name if path else 'built-in model'}…")
        return self.runner.submit(
            "Open model",
            jobs.load_model(path, self.settings.backend, self.settings.device),
            key="model",
            on_result=lambda model: self._model_ready(model, path),
            on_progress=lambda _f, message: self.model_label.setText(message),
            on_error=self._model_failed,
        )

    def set_backend(self, backend: str) -> None:
        """Switch between ONNX Runtime and PyTorch without restarting."""
        self.settings.backend = backend
        self._sync_backend_actions()
        self.open_model(self._model_path)

    def set_device(self, device: str) -> None:
        """Switch between automatic, CPU and CUDA without restarting."""
        self.settings.device = device
        self._sync_backend_actions()
        self.open_model(self._model_path)

    def _sync_backend_actions(self) -> None:
        self.actions_.backend[self.settings.backend].setChecked(True)
        self.actions_.device[self.settings.device].setChecked(True)

    def _model_ready(self, model: ActiveModel, path: str | None) -> None:
        # Results still coming from the previous model must not land in the gallery.
        self.cancel_classification()
        self._generation += 1
        self.active_model = model
        self._model_path = path
        self._device_in_use = self.settings.device
        self.model_label.setText(model.status_text())
        self.model_label.setToolTip(str(model.bundle.path))
        if path:
            self.settings.add_recent_model(str(Path(path).resolve()))
        self.explain.set_model(model)
        inputs = self._waiting_inputs or [e.path for e in self.results.entries()]
        self._waiting_inputs = []
        if inputs:
            self._classify(inputs)

    def _model_failed(self, message: str) -> None:
        self.notifications.error(f"Could not open the model: {message}")
        active = self.active_model
        self.model_label.setText(active.status_text() if active else "No model")
        if active is not None:  # keep the menus (and the next start) true to what runs
            self.settings.backend = active.classifier.backend
            self.settings.device = self._device_in_use
            self._sync_backend_actions()

    # ----- images -------------------------------------------------------------------------
    def add_inputs(self, inputs: list[Path]) -> None:
        """Classify image files and folders (queued until a model is ready)."""
        if not inputs:
            return
        self.pages.setCurrentIndex(1)
        if self.active_model is None:
            self._waiting_inputs.extend(inputs)
            self.results.add_pending([p for p in inputs if p.is_file()])
            return
        self._classify(inputs)

    def _classify(self, inputs: list[Path]) -> None:
        model = self.active_model
        assert model is not None
        self.progress.setValue(0)
        for widget in (self.progress, self.progress_label, self.cancel_button):
            widget.setVisible(True)
        generation = self._generation
        started = time.monotonic()
        handle = self.runner.submit(
            "Classify",
            jobs.classify_inputs(inputs, model, self.settings.top_k),
            on_item=lambda item: self._on_classify_item(item, generation),
            on_progress=lambda f, m: self._show_progress(f, m, started),
        )
        handle.finished.connect(lambda: self._classify_finished(handle))
        self._classify_tasks.add(handle)

    def _show_progress(self, fraction: float, message: str, started: float) -> None:
        self.progress.setValue(round(fraction * 1000))
        elapsed = time.monotonic() - started
        eta = elapsed / fraction - elapsed if fraction > 0.02 else None
        self.progress_label.setText(message + (f" · {eta:.0f} s left" if eta else ""))

    def _on_classify_item(self, item: object, generation: int) -> None:
        if generation != self._generation:
            return
        if isinstance(item, jobs.Listed):
            self.results.add_pending(item.paths)
            for path, reason in item.problems:
                self.notifications.error(f"{path}: {reason}")
            if not item.paths and not item.problems:
                self.notifications.info("No images found in what was dropped")
            if item.paths and not self.gallery.currentIndex().isValid():
                self._select_path(item.paths[0])
        elif isinstance(item, jobs.Classified):
            self.results.set_result(item.path, item.predictions, item.error, item.thumbnail)
            if item.error is not None:
                self.notifications.error(f"{item.path.name}: {item.error}")
            if self._focus is not None and self._focus[0] == item.path:
                self._select_path(item.path)
                self.explain.show_tab("prediction")
                self.explain.prediction.explain_class(self._focus[1])
                self._focus = None

    def _select_path(self, path: Path) -> None:
        row = self.results.row_of(path)
        if row is not None:
            proxy_index = self.filter_model.mapFromSource(self.results.index(row))
            if proxy_index.isValid():
                self.gallery.setCurrentIndex(proxy_index)

    def _classify_finished(self, handle: TaskHandle) -> None:
        self._classify_tasks.discard(handle)
        if not self._classify_tasks:
            for widget in (self.progress, self.progress_label, self.cancel_button):
                widget.setVisible(False)

    def cancel_classification(self) -> None:
        """Stop every running batch; finished results stay."""
        for handle in self._classify_tasks:
            handle.cancel()

    def clear_images(self) -> None:
        """Forget every image."""
        self.cancel_classification()
        self._generation += 1
        self._waiting_inputs = []
        self.results.clear()
        self.explain.set_image(None)
        self.pages.setCurrentIndex(0)

    def selected_entry(self) -> ImageEntry | None:
        """The image selected in the gallery, if any."""
        index = self.gallery.currentIndex()
        return index.data(EntryRole) if index.isValid() else None

    def _on_results_changed(self, top_left: QModelIndex, _bottom_right=None, _roles=()) -> None:
        entry = self.selected_entry()
        changed = self.results.entry(top_left.row()) if top_left.isValid() else None
        if entry is not None and changed is not None and changed.path == entry.path:
            self._show_selected()

    def _show_selected(self) -> None:
        self.explain.set_image(self.selected_entry())

    # ----- drag and drop ------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        first = paths[0]
        if len(paths) == 1 and (first.suffix.lower() == ".onnx" or first.suffix == BUNDLE_SUFFIX):
            self.open_model(str(first))
            return
        self.add_inputs(paths)

    # ----- lifetime -----------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geometry = self.settings.qsettings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        splitter_state = self.settings.qsettings.value("window/splitter")
        if isinstance(splitter_state, QByteArray):
            self.splitter.restoreState(splitter_state)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.qsettings.setValue("window/geometry", self.saveGeometry())
        self.settings.qsettings.setValue("window/splitter", self.splitter.saveState())
        # A training run saves its best model before stopping: give it time to.
        self.runner.shutdown(timeout_s=30.0 if self.train_panel.handle is not None else 5.0)
        super().closeEvent(event)
