"""An image view that reports which image pixel was clicked."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Signal
from PySide6.QtGui import QMouseEvent

from cnn_desktop.gui.widgets.image_preview import ImagePreview


class ClickableImage(ImagePreview):
    """Emits ``clicked(x, y)`` in the shown image's own pixel coordinates."""

    clicked = Signal(int, int)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        point = self.image_point(event.position())
        if point is not None:
            self.clicked.emit(*point)
        super().mousePressEvent(event)

    def image_point(self, position: QPointF) -> tuple[int, int] | None:
        """The image pixel under a widget position, or None outside the image."""
        image = self.image()
        if image is None or image.isNull():
            return None
        scale = min(self.width() / image.width(), self.height() / image.height())
        shown_w, shown_h = image.width() * scale, image.height() * scale
        left, top = (self.width() - shown_w) / 2, (self.height() - shown_h) / 2
        x, y = (position.x() - left) / scale, (position.y() - top) / scale
        if 0 <= x < image.width() and 0 <= y < image.height():
            return int(x), int(y)
        return None
