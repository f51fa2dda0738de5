"""The main window: drop images, see what the model thinks of each."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QImage, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QListView,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from cnn_desktop.core.bundle import BUNDLE_SUFFIX
from cnn_desktop.core.images import IMAGE_EXTENSIONS
from cnn_desktop.gui import jobs
from cnn_desktop.gui.results_model import ResultsModel
from cnn_desktop.gui.runner import TaskHandle, TaskRunner
from cnn_desktop.gui.state import ActiveModel, Settings
from cnn_desktop.gui.widgets.gallery_delegate import GalleryDelegate
from cnn_desktop.gui.widgets.image_preview import ImagePreview
from cnn_desktop.gui.widgets.notifications import NotificationArea
from cnn_desktop.gui.widgets.prediction_bars import PredictionBars

EMPTY_HINT = "Drop images or folders here\n\nor use File → Open Images… (Ctrl+O)"


class MainWindow(QMainWindow):
    """Gallery of classified images with the selected one's top-K classes."""

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
        self._waiting_inputs: list[Path] = []
        self._classify_tasks: set[TaskHandle] = set()
        # Bumped by "Clear": results still queued from older batches are dropped.
        self._generation = 0
        self._build_ui()
        self._build_menus()
        self._restore_geometry()
        self.open_model(model_path)

    # ----- layout -------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.gallery = QListView(self)
        self.gallery.setModel(self.results)
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery_delegate = GalleryDelegate(jobs.THUMBNAIL_SIZE, self.gallery)
        self.gallery.setItemDelegate(self.gallery_delegate)
        self.gallery.setGridSize(self.gallery_delegate.tile_size())
        self.gallery.setResizeMode(QListView.ResizeMode.Adjust)
        self.gallery.setUniformItemSizes(True)
        self.gallery.setSpacing(4)
        self.gallery.setMovement(QListView.Movement.Static)
        self.gallery.selectionModel().currentChanged.connect(lambda *_: self._show_selected())
        self.results.dataChanged.connect(self._on_results_changed)

        self.preview = ImagePreview("Select an image", self)
        self.selected_name = QLabel(self)
        self.selected_name.setWordWrap(True)
        self.bars = PredictionBars(self)
        detail = QWidget(self)
        detail_layout = QVBoxLayout(detail)
        detail_layout.addWidget(self.preview, 1)
        detail_layout.addWidget(self.selected_name)
        detail_layout.addWidget(self.bars)

        splitter = QSplitter(self)
        splitter.addWidget(self.gallery)
        splitter.addWidget(detail)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        self.splitter = splitter

        self.empty_state = QLabel(EMPTY_HINT, self)
        self.empty_state.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_state.setStyleSheet("font-size: 18px; color: palette(placeholder-text);")
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.empty_state)
        self.pages.addWidget(splitter)

        self.notifications = NotificationArea(self)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.notifications)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        self.model_label = QLabel("Loading model…", self)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(220)
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_classification)
        self.statusBar().addWidget(self.model_label, 1)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open Images…", QKeySequence.StandardKey.Open, self.choose_images)
        self._action(file_menu, "Open &Folder…", "Ctrl+Shift+O", self.choose_folder)
        self._action(file_menu, "Open &Model…", "Ctrl+M", self.choose_model)
        self._action(
            file_menu, "Use &Built-in Model", "Ctrl+Shift+M", lambda: self.open_model(None)
        )
        file_menu.addSeparator()
        self._action(file_menu, "&Clear Images", "Ctrl+Shift+Backspace", self.clear_images)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&About cnn-desktop", "F1", self.show_about)

    def _action(self, menu, text, shortcut, slot) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

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

    def _model_ready(self, model: ActiveModel, path: str | None) -> None:
        self.active_model = model
        self.model_label.setText(model.status_text())
        if path:
            self.settings.add_recent_model(str(Path(path).resolve()))
        inputs = self._waiting_inputs or [e.path for e in self.results.entries()]
        self._waiting_inputs = []
        if inputs:
            self._classify(inputs)

    def _model_failed(self, message: str) -> None:
        self.notifications.error(f"Could not open the model: {message}")
        self.model_label.setText(
            self.active_model.status_text() if self.active_model else "No model"
        )

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
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        generation = self._generation
        handle = self.runner.submit(
            "Classify",
            jobs.classify_inputs(inputs, model, self.settings.top_k),
            on_item=lambda item: self._on_classify_item(item, generation),
            on_progress=lambda f, _m: self.progress.setValue(round(f * 1000)),
        )
        handle.finished.connect(lambda: self._classify_finished(handle))
        self._classify_tasks.add(handle)

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
                row = self.results.row_of(item.paths[0])
                self.gallery.setCurrentIndex(self.results.index(row or 0))
        elif isinstance(item, jobs.Classified):
            self.results.set_result(item.path, item.predictions, item.error, item.thumbnail)
            if item.error is not None:
                self.notifications.error(f"{item.path.name}: {item.error}")

    def _classify_finished(self, handle: TaskHandle) -> None:
        self._classify_tasks.discard(handle)
        if not self._classify_tasks:
            self.progress.setVisible(False)
            self.cancel_button.setVisible(False)

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
        self.preview.set_image(None)
        self.bars.set_predictions(())
        self.selected_name.clear()
        self.pages.setCurrentIndex(0)

    def _on_results_changed(self, top_left, _bottom_right, _roles=()) -> None:
        current = self.gallery.currentIndex()
        if current.isValid() and current.row() == top_left.row():
            self._show_selected()

    def _show_selected(self) -> None:
        index = self.gallery.currentIndex()
        if not index.isValid():
            return
        entry = self.results.entry(index.row())
        self.selected_name.setText(str(entry.path))
        self.bars.set_predictions(entry.predictions)
        self.preview.set_image(self._large_image(entry.path) or entry.thumbnail)

    def _large_image(self, path: Path) -> QImage | None:
        image = QImage(str(path))
        return None if image.isNull() else image

    # ----- dialogs ------------------------------------------------------------------------
    def choose_images(self) -> None:
        patterns = " ".join(f"*{ext}" for ext in sorted(IMAGE_EXTENSIONS))
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open Images", self.settings.last_folder, f"Images ({patterns});;All files (*)"
        )
        if files:
            self.settings.last_folder = str(Path(files[0]).parent)
            self.add_inputs([Path(f) for f in files])

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open Folder", self.settings.last_folder)
        if folder:
            self.settings.last_folder = folder
            self.add_inputs([Path(folder)])

    def choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open Model",
            self.settings.last_folder,
            "Models (*.onnx model.json);;All files (*)",
        )
        if path:
            chosen = Path(path)
            self.open_model(str(chosen.parent if chosen.name == "model.json" else chosen))

    def show_about(self) -> None:
        from cnn_desktop import __version__

        model = self.active_model.status_text() if self.active_model else "no model loaded"
        text = (
            f"<b>cnn-desktop {__version__}</b><br>Image classification with CNNs, locally."
            f"<br><br>Model: {model}"
        )
        QMessageBox.about(self, "About cnn-desktop", text)

    # ----- drag and drop ------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        if len(paths) == 1 and (
            paths[0].suffix.lower() == ".onnx" or paths[0].suffix == BUNDLE_SUFFIX
        ):
            self.open_model(str(paths[0]))
            return
        self.add_inputs(paths)

    # ----- lifetime -----------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geometry = self.settings.qsettings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1100, 720)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.qsettings.setValue("window/geometry", self.saveGeometry())
        self.runner.shutdown(timeout_s=5.0)
        super().closeEvent(event)


def schedule(callback, delay_ms: int = 0) -> None:
    """Run ``callback`` on the UI thread after ``delay_ms``."""
    QTimer.singleShot(delay_ms, callback)
