"""The main window: a gallery of dropped images, what the model thinks of each, and why."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent
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

from cnn_desktop.core.models import BUNDLE_SUFFIX
from cnn_desktop.gui import jobs
from cnn_desktop.gui.batch_panel import BatchPanel
from cnn_desktop.gui.classification import WindowClassification
from cnn_desktop.gui.commands import WindowCommands
from cnn_desktop.gui.explain_panel import ExplainPanel
from cnn_desktop.gui.gallery_filter import GalleryFilterBar, GalleryFilterModel
from cnn_desktop.gui.menus import build_menus
from cnn_desktop.gui.results_model import EntryRole, ImageEntry, ResultsModel
from cnn_desktop.gui.runner import TaskHandle, TaskRunner
from cnn_desktop.gui.runs_actions import start_rerun
from cnn_desktop.gui.runs_panel import RunsPanel
from cnn_desktop.gui.state import ActiveModel, Settings
from cnn_desktop.gui.train_panel import TrainPanel
from cnn_desktop.gui.widgets.gallery_delegate import GalleryDelegate
from cnn_desktop.gui.widgets.notifications import NotificationArea
from cnn_desktop.gui.window_lifetime import WindowLifetime

EMPTY_HINT = (
    "Drop images or folders here\n\n"
    "or use File → Open Images… (Ctrl+O), File → Open Folder… (Ctrl+Shift+O),\n"
    "or paste an image (Ctrl+V)"
)
PAGES = {"gallery": 0, "table": 1}


class MainWindow(WindowCommands, WindowClassification, WindowLifetime, QMainWindow):
    """Gallery of classified images; the selected one's classes, feature maps and CAM."""

    def __init__(self, settings: Settings | None = None, model_path: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle("cnn-desktop")
        self.setAcceptDrops(True)
        self.settings = settings or Settings()
        self.runner = TaskRunner(parent=self)
        self.runner.task_failed.connect(self._task_failed)
        self.results = ResultsModel(self)
        self.active_model: ActiveModel | None = None
        self._model_path: str | None = model_path
        self._device_in_use = self.settings.device  # the device choice the active model runs on
        self._start_classification()
        self._build_ui()
        self.actions_ = build_menus(self)
        self._sync_backend_actions()
        self._start_lifetime()
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
        self.runs_panel = RunsPanel(self.runner, self.settings, parent=self)
        self.mode_tabs.addTab(self.runs_panel, "Runs")
        self._connect_runs_panel()

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

    def _connect_runs_panel(self) -> None:
        runs, train = self.runs_panel, self.train_panel
        runs.message.connect(self.notifications.info)
        runs.error.connect(self.notifications.error)
        runs.use_model.connect(self.open_model)
        runs.rerun.connect(lambda record: (self.show_training(), start_rerun(train, record)))
        train.folder_edit.textChanged.connect(runs.set_train_folder)
        runs.set_train_folder(train.folder_edit.text())
        train.run_ended.connect(runs.refresh)

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

    def show_runs(self) -> None:
        """Show the Runs tab."""
        self.mode_tabs.setCurrentIndex(2)

    # ----- model --------------------------------------------------------------------------
    def open_model(self, path: str | None) -> TaskHandle:
        """Load a model bundle / .onnx (None: the built-in model) in the background."""
        self.model_label.setText(f"Loading {Path(path).name if path else 'built-in model'}…")
        return self.runner.submit(
            "Open model",
            jobs.load_model(path, self.settings.backend, self.settings.device),
            key="model",
            interactive=True,
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
        self.active_model = model
        self._model_path = path
        self._device_in_use = self.settings.device
        self.model_label.setText(model.status_text())
        self.model_label.setToolTip(str(model.bundle.path))
        if path:
            self.settings.add_recent_model(str(Path(path).resolve()))
        self.explain.set_model(model)
        # The previous model's jobs stop and what they would still deliver is dropped; what
        # is listed, or still being listed, is classified again by this model.
        self.reclassify()

    def _task_failed(self, title: str, message: str) -> None:
        self.notifications.error(f"{title}: {message}")

    def _model_failed(self, message: str) -> None:
        self.notifications.error(f"Could not open the model: {message}")
        active = self.active_model
        self.model_label.setText(active.status_text() if active else "No model")
        if active is not None:  # keep the menus (and the next start) true to what runs
            self.settings.backend = active.classifier.backend
            self.settings.device = self._device_in_use
            self._sync_backend_actions()

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
