"""The one visible place where errors and notices go: never silent, never a storm of dialogs."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListWidget, QPushButton, QVBoxLayout, QWidget

MAX_KEPT = 500


class NotificationArea(QWidget):
    """A banner with the latest message and a collapsible history of all of them."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notifications")
        self._banner = QLabel(self)
        self._banner.setWordWrap(True)
        self._banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._toggle = QPushButton("Details", self)
        self._toggle.setCheckable(True)
        self._dismiss = QPushButton("Dismiss", self)
        self._history = QListWidget(self)
        self._history.setVisible(False)
        self._history.setMaximumHeight(140)
        top = QHBoxLayout()
        top.addWidget(self._banner, 1)
        top.addWidget(self._toggle)
        top.addWidget(self._dismiss)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addLayout(top)
        layout.addWidget(self._history)
        self._toggle.toggled.connect(self._history.setVisible)
        self._dismiss.clicked.connect(self.dismiss)
        self._messages: list[tuple[str, str]] = []
        self.setVisible(False)

    def history(self) -> list[str]:
        """The Details list, oldest first (with the details of each message)."""
        return [self._history.item(row).text() for row in range(self._history.count())]

    @property
    def messages(self) -> list[tuple[str, str]]:
        """Every (level, text) shown since start, oldest first."""
        return list(self._messages)

    def error(self, text: str, details: str = "") -> None:
        """Show an error; ``details`` (e.g. a traceback) goes with it into the history."""
        self._show("error", text, details)

    def info(self, text: str) -> None:
        """Show a notice."""
        self._show("info", text)

    def _show(self, level: str, text: str, details: str = "") -> None:
        self._messages.append((level, text))
        del self._messages[:-MAX_KEPT]
        stamp = time.strftime("%H:%M:%S")
        line = f"{stamp}  {'⚠' if level == 'error' else 'ℹ'}  {text}"
        self._history.addItem(f"{line}\n{details.rstrip()}" if details else line)
        while self._history.count() > MAX_KEPT:
            self._history.takeItem(0)
        errors = sum(1 for lvl, _ in self._messages if lvl == "error")
        prefix = "⚠ " if level == "error" else "ℹ "
        suffix = f"   ({errors} errors in all)" if errors > 1 else ""
        self._banner.setText(prefix + text + suffix)
        colour = "#fde2e1" if level == "error" else "#e3eefc"
        self.setStyleSheet(f"#notifications {{ background: {colour}; color: #202020; }}")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setVisible(True)
        self.changed.emit()

    def dismiss(self) -> None:
        """Hide the banner (the history is kept)."""
        self.setVisible(False)
        self._toggle.setChecked(False)
