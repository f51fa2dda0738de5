"""The one visible place where errors and notices go: never silent, never a storm of dialogs.

A notice is shown once (:meth:`NotificationArea.error`, :meth:`NotificationArea.info`) or
kept up to date in place (:meth:`NotificationArea.updating`: one summary of a batch's failed
files, its per-file lines under it in *Details*). The bar is restyled only when its severity
changes: a restyle costs tens of milliseconds of the UI thread, a text change almost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

MAX_KEPT = 500
COLOURS = {"error": "#fde2e1", "info": "#e3eefc"}
DETAIL_INDENT = "      "


@dataclass
class _Message:
    level: str
    text: str
    stamp: str = field(default_factory=lambda: time.strftime("%H:%M:%S"))


class UpdatingNotice:
    """One notice of a :class:`NotificationArea` that changes in place (see
    :meth:`NotificationArea.updating`); its detail lines follow it in the history."""

    def __init__(self, area: NotificationArea, level: str) -> None:
        self._area = area
        self.level = level
        self._message: _Message | None = None
        self._header: QListWidgetItem | None = None
        self._lines: list[QListWidgetItem] = []
        self._more: QListWidgetItem | None = None

    def update(self, text: str, lines: Sequence[str] = (), more: str = "") -> None:
        """Show ``text`` (the first call adds the notice, later ones replace its text).

        Args:
            text: The one-line summary for the bar.
            lines: Every detail line so far, oldest first (only new ones are added).
            more: A last line saying what ``lines`` leaves out ("… and 12 more"), or "".
        """
        self._area._update(self, text, lines, more)


class NotificationArea(QWidget):
    """A banner with the latest message and a collapsible history of all of them."""

    changed = Signal()  # the banner shows a new or updated message

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notifications")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
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
        self._messages: list[_Message] = []
        self._errors = 0
        self._severity = ""  # the level the bar is styled for
        self._dismissed = False
        self.setVisible(False)

    def history(self) -> list[str]:
        """The Details list, oldest first (with the details of each message)."""
        return [self._history.item(row).text() for row in range(self._history.count())]

    def banner_text(self) -> str:
        """What the bar says now."""
        return self._banner.text()

    @property
    def messages(self) -> list[tuple[str, str]]:
        """Every (level, text) shown since start, oldest first (an updating notice once, as it
        reads now)."""
        return [(m.level, m.text) for m in self._messages]

    def error(self, text: str, details: str = "") -> None:
        """Show an error; ``details`` (e.g. a traceback) goes with it into the history."""
        self._add("error", text, f"\n{details.rstrip()}" if details else "")

    def info(self, text: str) -> None:
        """Show a notice."""
        self._add("info", text, "")

    def updating(self, level: str = "error") -> UpdatingNotice:
        """A notice to fill in later and keep up to date (nothing shows before its first
        :meth:`UpdatingNotice.update`)."""
        return UpdatingNotice(self, level)

    def _add(self, level: str, text: str, details: str) -> _Message:
        message = _Message(level, text)
        self._messages.append(message)
        del self._messages[:-MAX_KEPT]
        self._errors += level == "error"
        self._history.addItem(self._history_line(message) + details)
        self._trim_history()
        self._dismissed = False
        self._show_banner(message)
        return message

    def _update(self, notice: UpdatingNotice, text: str, lines: Sequence[str], more: str) -> None:
        if notice._message is None:
            notice._message = self._add(notice.level, text, "")
            notice._header = self._history.item(self._history.count() - 1)
            self._update_details(notice, lines, more)
            return
        notice._message.text = text
        self._update_details(notice, lines, more)
        if not self._dismissed:
            self._show_banner(notice._message)

    def _update_details(self, notice: UpdatingNotice, lines: Sequence[str], more: str) -> None:
        header = notice._header
        if header is None or header.listWidget() is None:
            return  # pushed out of the history by newer messages
        assert notice._message is not None
        header.setText(self._history_line(notice._message))
        last = notice._lines[-1] if notice._lines else header
        row = self._history.row(last) + 1
        new = [DETAIL_INDENT + line for line in lines[len(notice._lines) :]]
        if new:
            self._history.insertItems(row, new)
            notice._lines += [self._history.item(row + i) for i in range(len(new))]
        if more and notice._more is None:
            notice._more = QListWidgetItem()
            self._history.insertItem(row + len(new), notice._more)
        if notice._more is not None:
            notice._more.setText(DETAIL_INDENT + more)
        self._trim_history()

    def _history_line(self, message: _Message) -> str:
        return f"{message.stamp}  {'⚠' if message.level == 'error' else 'ℹ'}  {message.text}"

    def _trim_history(self) -> None:
        while self._history.count() > MAX_KEPT:
            self._history.takeItem(0)

    def _show_banner(self, message: _Message) -> None:
        prefix = "⚠ " if message.level == "error" else "ℹ "
        suffix = f"   ({self._errors} errors in all)" if self._errors > 1 else ""
        self._banner.setText(prefix + message.text + suffix)
        if message.level != self._severity:
            self._severity = message.level
            colour = COLOURS.get(message.level, COLOURS["info"])
            self.setStyleSheet(f"#notifications {{ background: {colour}; color: #202020; }}")
        self.setVisible(True)
        self.changed.emit()

    def dismiss(self) -> None:
        """Hide the banner (the history is kept; updates of a notice do not reopen it, a new
        notice does)."""
        self._dismissed = True
        self.setVisible(False)
        self._toggle.setChecked(False)
