"""Choosing training augmentations: one checkbox each, and a grid of augmented versions of
one training image (what the network will be shown), computed on the task runner."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QCheckBox, QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from cnn_desktop.core.imaging import load_image
from cnn_desktop.core.models import ModelSpec
from cnn_desktop.core.training import AUGMENTATIONS, augmentation_preview
from cnn_desktop.gui.qt_images import pil_to_qimage
from cnn_desktop.gui.runner import TaskContext, TaskHandle, TaskRunner

SAMPLES = 8
COLUMNS = 4
TILE_SIDE = 68
SCRATCH_PREVIEW_SIDE = 64
DEBOUNCE_MS = 150
PreviewSource = Callable[[], tuple[Path, ModelSpec] | None]


def preview_spec(mode: str, arch: str, classes: Sequence[str], img_size: int = 0) -> ModelSpec:
    """The preprocessing the preview imitates: the built-in model's for head and full
    fine-tuning, a ``img_size`` (default 64) pixel stretch for training from scratch."""
    if mode != "scratch":
        from cnn_desktop.core.models import default_spec

        return default_spec()
    side = img_size or SCRATCH_PREVIEW_SIDE
    return ModelSpec(
        name="preview",
        architecture=arch,
        class_names=tuple(classes) or ("?",),
        input_size=(side, side),
        interpolation="bilinear",
        resize_mode="stretch",
        crop_fraction=1.0,
    )


class AugmentPreview(QWidget):
    """``SAMPLES`` tiles in ``COLUMNS`` columns, and a line saying what they show."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel("Choose a data folder to preview augmentation.", self)
        self.caption.setWordWrap(True)
        self.caption.setStyleSheet("color: palette(placeholder-text);")
        grid = QGridLayout()
        grid.setSpacing(4)
        self.tiles: list[QLabel] = []
        for index in range(SAMPLES):
            tile = QLabel(self)
            tile.setFixedSize(TILE_SIDE, TILE_SIDE)
            tile.setAlignment(Qt.AlignmentFlag.AlignCenter)
            tile.setFrameShape(QFrame.Shape.StyledPanel)
            grid.addWidget(tile, index // COLUMNS, index % COLUMNS)
            self.tiles.append(tile)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)
        layout.addWidget(self.caption)
        layout.addStretch(1)
        self.images: list[QImage] = []

    def set_images(self, images: Sequence[QImage], caption: str = "") -> None:
        """Show augmented samples (scaled up or down to the tiles, aspect kept)."""
        self.images = list(images)
        for index, tile in enumerate(self.tiles):
            if index < len(self.images):
                image = self.images[index]
                small = max(image.width(), image.height()) < TILE_SIDE // 2
                mode = (
                    Qt.TransformationMode.FastTransformation
                    if small  # tiny images (digits) stay crisp
                    else Qt.TransformationMode.SmoothTransformation
                )
                side = TILE_SIDE - 4
                pixmap = QPixmap.fromImage(image).scaled(
                    side, side, Qt.AspectRatioMode.KeepAspectRatio, mode
                )
                tile.setPixmap(pixmap)
            else:
                tile.clear()
        self.caption.setText(caption)

    def set_message(self, text: str) -> None:
        """Show a message instead of samples (no data yet, an error, computing…)."""
        self.caption.setText(text)

    def clear(self, text: str = "") -> None:
        """Empty tiles and a message."""
        self.set_images([], text)


class AugmentationChooser(QWidget):
    """A checkbox per :data:`AUGMENTATIONS` entry and the preview of their effect.

    ``source()`` gives the image and spec to preview (None: nothing to show yet); the preview
    is recomputed, debounced, whenever the choice changes or :meth:`refresh` is called.
    """

    changed = Signal()

    def __init__(
        self, runner: TaskRunner, source: PreviewSource, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.source = source
        self.boxes: dict[str, QCheckBox] = {}
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        for index, (name, description) in enumerate(AUGMENTATIONS.items()):
            box = QCheckBox(name, self)
            box.setToolTip(description)
            box.toggled.connect(lambda _on: self._changed())
            grid.addWidget(box, index // COLUMNS, index % COLUMNS)
            self.boxes[name] = box
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setVisible(False)
        self.preview = AugmentPreview(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)
        layout.addWidget(self.note)
        layout.addWidget(self.preview)
        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh_now)
        self.applicable = True

    def names(self) -> tuple[str, ...]:
        """The chosen augmentations (none where they do not apply)."""
        if not self.applicable:
            return ()
        return tuple(name for name, box in self.boxes.items() if box.isChecked())

    def set_checked(self, names: Sequence[str]) -> None:
        """Tick exactly ``names``."""
        for name, box in self.boxes.items():
            box.blockSignals(True)
            box.setChecked(name in names)
            box.blockSignals(False)
        self._changed()

    def set_applicable(self, applicable: bool, why: str = "") -> None:
        """Enable the checkboxes, or disable them and say ``why``."""
        self.applicable = applicable
        for box in self.boxes.values():
            box.setEnabled(applicable)
        self.note.setText(why)
        self.note.setVisible(not applicable and bool(why))
        self._changed()

    def refresh(self) -> None:
        """Recompute the preview soon (several calls in a row compute it once)."""
        self._timer.start()

    def refresh_now(self) -> TaskHandle | None:
        """Recompute the preview in the background now."""
        self._timer.stop()
        source = self.source()
        if source is None:
            self.preview.clear("Choose a data folder to preview augmentation.")
            return None
        path, spec = source
        names = self.names()
        side = spec.input_size[0]
        caption = f"{path.name}: {', '.join(names) or 'no augmentation'}, {side}×{side} px"

        def job(_context: TaskContext) -> list[QImage]:
            samples = augmentation_preview(load_image(path), names, spec, SAMPLES, 0)
            return [pil_to_qimage(sample) for sample in samples]

        self.preview.set_message("Computing the preview…")
        return self.runner.submit(
            "Augmentation preview",
            job,
            key="augment-preview",
            interactive=True,
            on_result=lambda images: self.preview.set_images(images, caption),
            on_error=lambda text: self.preview.clear(f"No preview: {text}"),
        )

    def _changed(self) -> None:
        self.changed.emit()
        self.refresh()
