"""Paints one gallery tile: the thumbnail, the file name and the top-1 verdict."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from cnn_desktop.gui.results_model import EntryRole, ImageEntry

PADDING = 6


class GalleryDelegate(QStyledItemDelegate):
    """Fixed-size tiles so thousands of images lay out instantly."""

    def __init__(self, thumbnail_size: int, parent=None) -> None:
        super().__init__(parent)
        self.thumbnail_size = thumbnail_size

    def tile_size(self, option: QStyleOptionViewItem | None = None) -> QSize:
        """The size of every tile."""
        line = QFontMetrics(option.font).height() if option is not None else 16
        return QSize(
            self.thumbnail_size + 2 * PADDING + 24, self.thumbnail_size + 3 * PADDING + 2 * line
        )

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        return self.tile_size(option)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        entry: ImageEntry = index.data(EntryRole)
        if entry is None:
            return
        painter.save()
        rect = option.rect
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(
                rect.adjusted(2, 2, -2, -2), palette.color(QPalette.ColorRole.Highlight)
            )
        thumb_area = QRect(
            rect.x() + PADDING, rect.y() + PADDING, rect.width() - 2 * PADDING, self.thumbnail_size
        )
        self._paint_thumbnail(painter, thumb_area, entry.thumbnail, palette)
        text_colour = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        metrics = QFontMetrics(option.font)
        line = metrics.height()
        text_top = thumb_area.bottom() + PADDING
        width = rect.width() - 2 * PADDING
        name, verdict = entry.caption().split("\n", 1)
        painter.setPen(text_colour)
        painter.drawText(
            QRect(rect.x() + PADDING, text_top, width, line),
            Qt.AlignmentFlag.AlignHCenter,
            metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, width),
        )
        if entry.error is not None:
            painter.setPen(QColor("#d04040") if not selected else text_colour)
        elif entry.pending:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        else:
            font = painter.font()
            font.setBold(True)
            painter.setFont(font)
            metrics = QFontMetrics(font)
        painter.drawText(
            QRect(rect.x() + PADDING, text_top + line, width, line),
            Qt.AlignmentFlag.AlignHCenter,
            metrics.elidedText(verdict, Qt.TextElideMode.ElideRight, width),
        )
        painter.restore()

    def _paint_thumbnail(
        self, painter: QPainter, area: QRect, image: QImage | None, palette: QPalette
    ) -> None:
        if image is None or image.isNull():
            painter.fillRect(
                area.adjusted(20, 10, -20, -10), palette.color(QPalette.ColorRole.AlternateBase)
            )
            return
        scaled = image.size().scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRect(0, 0, scaled.width(), scaled.height())
        target.moveCenter(area.center())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, image)
