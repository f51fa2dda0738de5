"""A trained model's results: a confusion matrix (rows: true class, columns: predicted class)
whose cells can be clicked, the images behind a clicked cell with thumbnails, and the view
around them (accuracy, export check, per-class precision/recall/F1, what to do next)."""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps
from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_desktop.core.imaging import ImageLoadError, load_image
from cnn_desktop.core.training import TrainResult
from cnn_desktop.gui.qt_images import pil_to_qimage
from cnn_desktop.gui.runner import TaskContext, TaskHandle, TaskRunner

CORRECT_COLOUR = QColor(33, 113, 181)  # diagonal: right answers
WRONG_COLOUR = QColor(215, 48, 39)  # off the diagonal: mistakes
THUMBNAIL_SIDE = 72
PathRole = Qt.ItemDataRole.UserRole


def _blend(base: QColor, colour: QColor, amount: float) -> QColor:
    amount = max(0.0, min(1.0, amount))
    return QColor(
        round(base.red() + (colour.red() - base.red()) * amount),
        round(base.green() + (colour.green() - base.green()) * amount),
        round(base.blue() + (colour.blue() - base.blue()) * amount),
    )


class ConfusionMatrixView(QWidget):
    """Counts with colour intensity (share of the true class's images) and class names on both
    axes; clicking a cell emits ``cell_clicked(true_index, predicted_index)``."""

    cell_clicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel("Rows: true class · columns: predicted class", self)
        self.caption.setStyleSheet("color: palette(placeholder-text);")
        self.table = QTableWidget(self)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # No selection colour: the cell colours carry the meaning; the clicked cell is in bold.
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setCornerButtonEnabled(False)
        for header in (self.table.horizontalHeader(), self.table.verticalHeader()):
            header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
            header.setMinimumSectionSize(40)
        self.table.cellClicked.connect(self._clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.table, 1)
        self.classes: tuple[str, ...] = ()
        self.counts: list[list[int]] = []

    def set_matrix(self, classes: Sequence[str], matrix: Sequence[Sequence[Any]]) -> None:
        """Show ``matrix[true][predicted]`` image counts."""
        self.classes = tuple(classes)
        self.counts = [[int(value) for value in row] for row in matrix]
        n = len(self.classes)
        self.table.clear()
        self.table.setRowCount(n)
        self.table.setColumnCount(n)
        self.table.setHorizontalHeaderLabels(list(self.classes))
        self.table.setVerticalHeaderLabels(list(self.classes))
        base = self.palette().color(self.backgroundRole()).lighter(105)
        for row, counts in enumerate(self.counts):
            total = sum(counts) or 1
            for column, count in enumerate(counts):
                share = count / total
                colour = CORRECT_COLOUR if row == column else WRONG_COLOUR
                item = QTableWidgetItem(str(count))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setBackground(_blend(base, colour, share if count else 0.0))
                if count and share > 0.5:
                    item.setForeground(QColor("white"))
                item.setToolTip(
                    f"true {self.classes[row]}, predicted {self.classes[column]}: "
                    f"{count} image(s), {share:.0%} of {self.classes[row]}"
                )
                self.table.setItem(row, column, item)

    def _clicked(self, row: int, column: int) -> None:
        for r in range(self.table.rowCount()):
            for c in range(self.table.columnCount()):
                font = self.table.item(r, c).font()
                font.setBold((r, c) == (row, column))
                self.table.item(r, c).setFont(font)
        self.cell_clicked.emit(row, column)

    def clear(self) -> None:
        """Show nothing."""
        self.set_matrix((), ())

    def total(self) -> int:
        """Images counted in the matrix."""
        return sum(sum(row) for row in self.counts)


class CellImagesView(QWidget):
    """The images of one confusion-matrix cell; selecting one emits
    ``image_selected(path, class_index)``."""

    image_selected = Signal(str, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Click a cell of the confusion matrix to list its images.", self)
        self.title.setWordWrap(True)
        self.list = QListWidget(self)
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        self.list.setGridSize(QSize(THUMBNAIL_SIDE + 40, THUMBNAIL_SIDE + 36))
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setMovement(QListWidget.Movement.Static)
        self.list.setWordWrap(True)
        self.list.currentItemChanged.connect(self._selected)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.list, 1)
        self._placeholder = QPixmap(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
        self._placeholder.fill(QColor(128, 128, 128, 60))

    def show_images(self, title: str, images: Sequence[tuple[str, int, str]]) -> None:
        """List ``(path, class index, caption)`` entries (thumbnails come later)."""
        self.title.setText(title)
        self.list.clear()
        for path, class_index, caption in images:
            item = QListWidgetItem(QIcon(self._placeholder), caption)
            item.setData(PathRole, (path, class_index))
            item.setToolTip(f"{path}\n{caption}")
            self.list.addItem(item)

    def set_thumbnail(self, path: str, image: QImage) -> None:
        """Show the thumbnail of ``path`` once it is decoded."""
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(PathRole)[0] == path:
                item.setIcon(QIcon(QPixmap.fromImage(image)))

    def paths(self) -> list[str]:
        """The listed image paths, in order."""
        return [self.list.item(row).data(PathRole)[0] for row in range(self.list.count())]

    def _selected(self, item: QListWidgetItem | None, _previous: object) -> None:
        if item is not None:
            path, class_index = item.data(PathRole)
            self.image_selected.emit(str(Path(path)), int(class_index))


def per_class_rows(evaluation: dict[str, Any]) -> list[tuple[str, float, float, float, int]]:
    """``(class, precision, recall, F1, support)`` from an evaluation's ``per_class``."""
    return [
        (
            str(name),
            *(float(entry.get(key, math.nan)) for key in ("precision", "recall", "f1")),
            int(entry.get("support", 0)),
        )
        for name, entry in (evaluation.get("per_class") or {}).items()
    ]


def _class_index(value: Any, classes: Sequence[str]) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return classes.index(str(value)) if str(value) in classes else -1


def cell_images(
    evaluation: dict[str, Any], classes: Sequence[str], true: int, predicted: int
) -> list[tuple[str, int, str]]:
    """``(path, predicted index, caption)`` of the misclassified images of one cell."""
    found = []
    for entry in evaluation.get("misclassified") or []:
        t = _class_index(entry.get("true"), classes)
        p = _class_index(entry.get("predicted"), classes)
        if (t, p) == (true, predicted):
            confidence = entry.get("confidence")
            caption = Path(str(entry["path"])).name
            if isinstance(confidence, int | float):
                caption += f"\n{confidence:.0%}"
            found.append((str(entry["path"]), p, caption))
    return found


def load_thumbnails(paths: Sequence[str]) -> Callable[[TaskContext], int]:
    """A job that streams ``(path, QImage)`` thumbnails of ``paths``."""

    def job(context: TaskContext) -> int:
        for path in paths:
            context.cancel.raise_if_cancelled()
            try:
                image = load_image(path, min_side=THUMBNAIL_SIDE)
            except ImageLoadError:
                continue
            small = max(image.size) < THUMBNAIL_SIDE // 2  # tiny images (digits) stay crisp
            resample = Image.Resampling.NEAREST if small else Image.Resampling.BICUBIC
            image = ImageOps.contain(image, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), resample)
            context.emit((path, pil_to_qimage(image)))
        return len(paths)

    return job


class TrainResultsView(QWidget):
    """A trained model's figures: accuracy, the ONNX export check, precision/recall/F1 per
    class and the confusion matrix with the images behind each cell; and what to do next."""

    use_model = Signal(str)
    show_image = Signal(str, int)  # path, predicted class index
    message = Signal(str)
    error = Signal(str)

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.result: TrainResult | None = None
        self.evaluation: dict[str, Any] = {}
        self.classes: tuple[str, ...] = ()
        self.headline = QLabel("Results appear here when training ends.", self)
        self.headline.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.check_label = QLabel(self)
        for label in (self.headline, self.check_label):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.use_button = QPushButton("Use this model", self)
        self.use_button.clicked.connect(self._use)
        self.folder_button = QPushButton("Open folder", self)
        self.folder_button.clicked.connect(self.open_folder)
        self.export_button = QPushButton("Export ONNX…", self)
        self.export_button.clicked.connect(lambda: self.export_onnx())
        self.per_class = QTableWidget(0, 5, self)
        self.per_class.setHorizontalHeaderLabels(["Class", "Precision", "Recall", "F1", "Images"])
        self.per_class.verticalHeader().setVisible(False)
        self.per_class.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.per_class.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.matrix = ConfusionMatrixView(self)
        self.matrix.cell_clicked.connect(self.show_cell)
        self.cell_images = CellImagesView(self)
        self.cell_images.image_selected.connect(self.show_image)
        buttons = QHBoxLayout()
        for button in (self.use_button, self.folder_button, self.export_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        splitter = QSplitter(self)
        for widget in (self.per_class, self.matrix, self.cell_images):
            splitter.addWidget(widget)
        splitter.setSizes([330, 260, 260])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.headline)
        layout.addWidget(self.check_label)
        layout.addLayout(buttons)
        layout.addWidget(splitter, 1)
        self.clear()

    def clear(self) -> None:
        """No result (a new run starts)."""
        self.result, self.evaluation = None, {}
        self.headline.setText("Results appear here when training ends.")
        self.check_label.clear()
        self.per_class.setRowCount(0)
        self.matrix.clear()
        self.cell_images.show_images("Click a cell of the confusion matrix to list its images.", [])
        for button in (self.use_button, self.folder_button, self.export_button):
            button.setEnabled(False)

    def show_result(self, result: TrainResult, cancelled: bool = False) -> None:
        """Show a finished (or cancelled, best-so-far) run's figures."""
        self.result = result
        metrics = result.metrics
        self.evaluation = metrics.get("evaluation") or {}
        self.classes = tuple(self.evaluation.get("classes") or result.bundle.spec.class_names)
        training = metrics.get("training") or {}
        accuracy = self.evaluation.get("accuracy", training.get("best_val_accuracy"))
        where = metrics.get("evaluation_set", "validation")
        text = f"{where.capitalize()} accuracy: " + (
            f"{accuracy:.1%}" if isinstance(accuracy, int | float) else "not measured"
        )
        if cancelled:
            text = f"Cancelled: best model so far saved. {text}"
        self.headline.setText(f"{text}  ·  {result.bundle.path}")
        self.check_label.setText(export_check_text(metrics.get("export_check") or {}))
        passed = bool((metrics.get("export_check") or {}).get("passed"))
        self.check_label.setStyleSheet(f"color: {'#2e7d32' if passed else '#c62828'};")
        rows = per_class_rows(self.evaluation)
        self.per_class.setRowCount(len(rows))
        for row, values in enumerate(rows):
            cells = [values[0], *(f"{v:.2f}" if math.isfinite(v) else "–" for v in values[1:4])]
            for column, value in enumerate([*cells, str(values[4])]):
                item = QTableWidgetItem(value)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.per_class.setItem(row, column, item)
        self.matrix.set_matrix(self.classes, self.evaluation.get("confusion_matrix") or [])
        for button in (self.use_button, self.folder_button, self.export_button):
            button.setEnabled(True)

    def show_cell(self, true: int, predicted: int) -> TaskHandle | None:
        """List the images of a confusion-matrix cell, with thumbnails loaded in the background."""
        count = self.matrix.counts[true][predicted]
        name, guess = self.classes[true], self.classes[predicted]
        if true == predicted:
            self.cell_images.show_images(
                f"{count} image(s) of {name} classified correctly (correct images are not "
                "listed; click a cell off the diagonal to see mistakes).",
                [],
            )
            return None
        images = cell_images(self.evaluation, self.classes, true, predicted)
        self.cell_images.show_images(f"{count} image(s) of {name} predicted as {guess}:", images)
        if not images:
            return None
        return self.runner.submit(
            "Thumbnails",
            load_thumbnails([path for path, _, _ in images]),
            key="train-thumbnails",
            interactive=True,
            on_item=lambda item: self.cell_images.set_thumbnail(*item),
        )

    def _use(self) -> None:
        if self.result is not None:
            self.use_model.emit(str(self.result.bundle.path))

    def open_folder(self) -> None:
        """Show the saved model in the file manager."""
        if self.result is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.result.bundle.path.parent)))

    def export_onnx(self, target: str | None = None) -> TaskHandle | None:
        """Copy the model's ONNX file (its spec is in the metadata) to ``target`` or a path the
        user chooses, in the background."""
        if self.result is None:
            return None
        bundle = self.result.bundle
        if target is None:
            suggested = str(bundle.path.with_suffix(".onnx"))
            target, _ = QFileDialog.getSaveFileName(
                self, "Export ONNX model", suggested, "ONNX model (*.onnx)"
            )
            if not target:
                return None
        path = Path(target if target.endswith(".onnx") else f"{target}.onnx")
        return self.runner.submit(
            "Export ONNX",
            lambda _context: copy_file(bundle.onnx_path, path),
            on_result=lambda saved: self.message.emit(f"Exported {saved}"),
            on_error=lambda text: self.error.emit(f"Could not export the ONNX model: {text}"),
        )


def export_check_text(check: dict[str, Any]) -> str:
    """The export-check verdict in one line."""
    if not check.get("images"):
        return "✗ ONNX export not verified (no readable validation images)"
    verdict = "✓ ONNX export verified" if check.get("passed") else "✗ ONNX export check FAILED"
    return (
        f"{verdict}: top-1 agreement {check['top1_agreement']:.0%}, max probability difference "
        f"{check['max_abs_difference']:.1e} on {check['images']} images"
    )


def copy_file(source: Path, target: Path) -> str:
    """Copy atomically: a failed copy never leaves half a file at ``target``."""
    temp = target.with_name(f".{target.name}.part")
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return str(target)
