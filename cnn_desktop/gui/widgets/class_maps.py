"""Tiles of per-class mean maps: each class's mean crop with its mean heatmap over it, the class
name, how many images were averaged and where the evidence is strongest (marked on the tile)."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QPointF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from cnn_desktop.core.explain import ClassMap, overlay
from cnn_desktop.gui.qt_images import pil_to_qimage

TILE_SIDE = 80
CAPTION_LINES = 2
TILE_MARGINS = 14  # the frame, the layout's margins and spacing around a tile's parts
OPACITY = 0.5
SOURCE_WORDS = {"val": "validation", "test": "test", "all": ""}
ROWS, COLUMNS = ("upper", "middle", "lower"), ("left", "centre", "right")


def tile_image(class_map: ClassMap, side: int = TILE_SIDE) -> QImage:
    """The mean crop scaled to ``side`` (its longer edge) with the mean heatmap over it (safe
    on a worker thread)."""
    crop = class_map.mean_crop
    scale = side / max(crop.size)
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    background = crop.resize(size, Image.Resampling.BICUBIC)
    return pil_to_qimage(overlay(background, class_map.heatmap, opacity=OPACITY))


def where(peak: tuple[int, int], input_size: tuple[int, int]) -> str:
    """``upper left`` … ``centre`` … ``lower right``: the third of the crop ``peak`` is in."""
    height, width = input_size
    row = ROWS[min(2, 3 * peak[1] // max(1, height))]
    column = COLUMNS[min(2, 3 * peak[0] // max(1, width))]
    return "centre" if (row, column) == ("middle", "centre") else f"{row} {column}"


def images_phrase(count: int, source: str) -> str:
    """``6 validation images``, ``1 image``."""
    word = SOURCE_WORDS.get(source, "")
    return f"{count} {word + ' ' if word else ''}image{'' if count == 1 else 's'}"


class ClassMapTile(QFrame):
    """One class's mean map, its name, the images averaged and the peak."""

    def __init__(
        self, class_map: ClassMap, image: QImage, source: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.class_map = class_map
        self.source = source
        self.setFrameShape(QFrame.Shape.StyledPanel)
        height, width = class_map.heatmap.shape
        self.image_label = QLabel(self)
        self.image_label.setFixedSize(TILE_SIDE, TILE_SIDE)
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        if class_map.ok:
            self.image_label.setPixmap(self._marked(image, (height, width)))
        else:
            self.image_label.setText("no readable\nimage")
        self.caption = QLabel(self.caption_text(), self)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.setToolTip(self.tooltip_text())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(2)
        layout.addWidget(self.image_label, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.caption)

    def _marked(self, image: QImage, input_size: tuple[int, int]) -> QPixmap:
        """The tile with a ring around the peak."""
        pixmap = QPixmap.fromImage(image)
        height, width = input_size
        x = (self.class_map.peak[0] + 0.5) * pixmap.width() / width
        y = (self.class_map.peak[1] + 0.5) * pixmap.height() / height
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for colour, width_px in ((QColor(0, 0, 0, 200), 4.0), (QColor("white"), 2.0)):
            painter.setPen(QPen(colour, width_px))
            painter.drawEllipse(QPointF(x, y), 6.0, 6.0)
        painter.end()
        return pixmap

    def caption_text(self) -> str:
        """Name, images averaged, and where the peak is."""
        class_map = self.class_map
        count = f"{class_map.count} image{'' if class_map.count == 1 else 's'}"
        peak = f"peak {where(class_map.peak, class_map.heatmap.shape)}" if class_map.ok else ""
        return f"{class_map.name} · {count}\n{peak}"

    def tooltip_text(self) -> str:
        """What the tile shows, in full."""
        class_map = self.class_map
        height, width = class_map.heatmap.shape
        lines = [
            f"Mean evidence for {class_map.name} over "
            f"{images_phrase(class_map.count, self.source)} of the class"
            + (f" (of {class_map.available}, evenly spread)" if class_map.available > 1 else "")
            + (f", by {', '.join(class_map.methods)}" if class_map.methods else ""),
        ]
        if class_map.ok:
            x, y = class_map.peak
            lines.append(f"Strongest at x={x}, y={y} of the {width}×{height} crop the model sees")
        for path, reason in class_map.failed:
            lines.append(f"Left out {path.name}: {reason}")
        return "\n".join(lines)


class ClassMapStrip(QScrollArea):
    """A row of :class:`ClassMapTile`, scrolled sideways when there are many classes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        inner = QWidget(self)
        self._row = QHBoxLayout(inner)
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.addStretch(1)
        self.setWidget(inner)
        self.tiles: list[ClassMapTile] = []
        bar = self.horizontalScrollBar().sizeHint().height()
        lines = self.fontMetrics().lineSpacing() * CAPTION_LINES
        self.setMinimumHeight(TILE_SIDE + lines + TILE_MARGINS + bar)  # one row, never cut

    def sizeHint(self) -> QSize:
        """Room for one row of tiles and the sideways scroll bar."""
        return QSize(super().sizeHint().width(), self.minimumHeight())

    def add(self, tile: ClassMapTile) -> None:
        """Append a tile (before the stretch)."""
        tile.setParent(self.widget())
        self._row.insertWidget(self._row.count() - 1, tile)
        self.tiles.append(tile)

    def clear(self) -> None:
        """Remove every tile."""
        for tile in self.tiles:
            self._row.removeWidget(tile)
            tile.deleteLater()
        self.tiles = []
