"""Filtering and sorting the gallery: by label, by confidence, errors, unknown images;
name/label/confidence."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QWidget,
)

from cnn_desktop.gui.results_model import ImageEntry, ResultsModel

Index = QModelIndex | QPersistentModelIndex

SORT_KEYS: dict[str, str] = {
    "order added": "Order added",
    "name": "File name",
    "label": "Label",
    "confidence": "Confidence",
}
DEFAULT_ORDER = {"confidence": Qt.SortOrder.DescendingOrder}
ERRORS_ALL, ERRORS_ONLY, ERRORS_HIDDEN = "all", "only", "hide"
_DONE, _FAILED, _PENDING = 0, 1, 2  # sort ranks: results, then errors, then pending


def _rank(entry: ImageEntry) -> int:
    if entry.error is not None:
        return _FAILED
    return _PENDING if entry.pending or not entry.predictions else _DONE


class GalleryFilterModel(QSortFilterProxyModel):
    """A view of a :class:`ResultsModel` that filters and sorts its entries.

    Filters (all must pass): a label substring (case-insensitive; top-1 only unless
    :meth:`set_match_top_k`), a minimum top-1 confidence, and an error mode
    (``"all"``, ``"only"``: only failed images, where the text matches the error message,
    ``"hide"``), and "unknown only" (images the model's unknown detector found like none of
    its classes). Pending images pass only while no label or confidence filter is set. Sorting
    by name, label or confidence puts failed, then pending images last in either direction;
    "order added" is the source's order, untouched (nothing moves as results arrive).
    Filtering and sorting are dynamic: a result that arrives is placed (or hidden) at once.
    """

    filter_changed = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._entries: ResultsModel | None = None
        self._text = ""
        self._top_k = False
        self._min_confidence = 0.0
        self._errors = ERRORS_ALL
        self._unknown_only = False
        self._key = "order added"
        self.setDynamicSortFilter(True)

    def setSourceModel(self, model: Any) -> None:
        if not isinstance(model, ResultsModel):
            raise TypeError("GalleryFilterModel works over a ResultsModel")
        self._entries = model
        super().setSourceModel(model)

    # ----- settings -----------------------------------------------------------------------
    @property
    def label_filter(self) -> str:
        """The label substring that shown entries contain."""
        return self._text

    @property
    def min_confidence(self) -> float:
        """The least top-1 confidence shown (0..1)."""
        return self._min_confidence

    @property
    def error_mode(self) -> str:
        """``"all"``, ``"only"`` or ``"hide"``."""
        return self._errors

    @property
    def unknown_only(self) -> bool:
        """Whether only images marked unknown are shown."""
        return self._unknown_only

    @property
    def sort_key(self) -> str:
        """One of :data:`SORT_KEYS`."""
        return self._key

    def set_label_filter(self, text: str) -> None:
        """Show entries whose label contains ``text`` (case-insensitive; empty: all)."""
        self._change_filter("_text", text.strip().casefold())

    def set_match_top_k(self, enabled: bool) -> None:
        """Match the label filter against every top-k label, not only the top-1."""
        self._change_filter("_top_k", bool(enabled))

    def set_min_confidence(self, fraction: float) -> None:
        """Hide entries whose top-1 confidence is below ``fraction`` (0..1)."""
        self._change_filter("_min_confidence", min(max(float(fraction), 0.0), 1.0))

    def set_error_mode(self, mode: str) -> None:
        """``"all"`` (default), ``"only"`` (failed images only) or ``"hide"`` (no failures)."""
        if mode not in (ERRORS_ALL, ERRORS_ONLY, ERRORS_HIDDEN):
            raise ValueError(f"unknown error mode {mode!r}")
        self._change_filter("_errors", mode)

    def set_unknown_only(self, enabled: bool) -> None:
        """Show only images the model's unknown detector marked unknown ("none of these")."""
        self._change_filter("_unknown_only", bool(enabled))

    def set_sort_key(self, key: str, order: Qt.SortOrder | None = None) -> None:
        """Sort by ``key`` (see :data:`SORT_KEYS`); confidence is descending by default."""
        if key not in SORT_KEYS:
            raise ValueError(f"unknown sort key {key!r}")
        self._key = key
        order = DEFAULT_ORDER.get(key, Qt.SortOrder.AscendingOrder) if order is None else order
        if key == "order added":
            self.sort(-1, order)  # no sorting at all: the source's order, and no cost
        elif self.sortColumn() == 0 and self.sortOrder() == order:
            self.invalidate()  # same column and order: sort() alone would not re-sort
        else:
            self.sort(0, order)
        self.filter_changed.emit()

    def _change_filter(self, attribute: str, value: object) -> None:
        if change_filter(self, attribute, value):
            self.filter_changed.emit()

    # ----- the work -----------------------------------------------------------------------
    def entry_at(self, row: int) -> ImageEntry:
        """The entry shown at proxy ``row``."""
        assert self._entries is not None
        return self._entries.entry(self.mapToSource(self.index(row, 0)).row())

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if self._entries is None:
            return True
        entry = self._entries.entry(source_row)
        if self._unknown_only and not (entry.unknown and entry.error is None):
            return False
        if entry.error is not None:
            if self._errors == ERRORS_HIDDEN:
                return False
            if self._errors == ERRORS_ONLY:
                return self._text in entry.error.casefold()
            return not self._text and self._min_confidence <= 0.0
        if self._errors == ERRORS_ONLY:
            return False
        if entry.pending or not entry.predictions:
            return not self._text and self._min_confidence <= 0.0
        top = entry.predictions[0]
        if top.confidence < self._min_confidence:
            return False
        if not self._text:
            return True
        if self._top_k:
            return any(self._text in p.label.casefold() for p in entry.predictions)
        return self._text in top.label.casefold()

    def lessThan(self, left: Index, right: Index) -> bool:
        assert self._entries is not None
        a, b = self._entries.entry(left.row()), self._entries.entry(right.row())
        rank_a, rank_b = _rank(a), _rank(b)
        if rank_a != rank_b:
            # Qt flips the comparison for descending order; flip back so pending stays last.
            ascending = self.sortOrder() == Qt.SortOrder.AscendingOrder
            return rank_a < rank_b if ascending else rank_a > rank_b
        key = self._key
        if key == "name":
            return _name_key(a) < _name_key(b)
        if key == "label" and rank_a == _DONE:
            return _label_key(a) < _label_key(b)
        if key == "confidence" and rank_a == _DONE:
            return a.predictions[0].confidence < b.predictions[0].confidence
        return left.row() < right.row()  # ties among failed / pending images: order added


def _name_key(entry: ImageEntry) -> tuple[str, str]:
    return entry.path.name.casefold(), str(entry.path)


def _label_key(entry: ImageEntry) -> str:
    return entry.predictions[0].label.casefold()


class GalleryFilterBar(QWidget):
    """Filter text, minimum confidence, sort key, "Errors only" and "Unknown only" above the
    gallery."""

    def __init__(self, proxy: GalleryFilterModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.proxy = proxy
        self.text = QLineEdit(self)
        self.text.setPlaceholderText("Filter by label…")
        self.text.setClearButtonEnabled(True)
        self.text.setToolTip("Show images whose top class contains this text")
        self.confidence = QSlider(Qt.Orientation.Horizontal, self)
        self.confidence.setRange(0, 100)
        self.confidence.setMinimumWidth(90)
        self.confidence.setMaximumWidth(160)
        self.confidence.setToolTip("Hide images the model is less sure of than this")
        self.confidence_label = QLabel(self)
        self.confidence_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("≥ 100 %"))
        self.sort = QComboBox(self)
        for key, title in SORT_KEYS.items():
            self.sort.addItem(f"Sort: {title}", key)
        self.errors_only = QCheckBox("Errors only", self)
        self.unknown_only = QCheckBox("Unknown only", self)
        self.unknown_only.setToolTip(
            "Show only images the model finds like none of its classes (models you train "
            "have an unknown detector; the built-in model has none)"
        )
        self.count = QLabel(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(self.text, 1)
        layout.addWidget(QLabel("Min. confidence", self))
        layout.addWidget(self.confidence)
        layout.addWidget(self.confidence_label)
        layout.addWidget(self.sort)
        layout.addWidget(self.errors_only)
        layout.addWidget(self.unknown_only)
        layout.addWidget(self.count)

        self.text.textChanged.connect(proxy.set_label_filter)
        self.confidence.valueChanged.connect(self._confidence_changed)
        self.sort.currentIndexChanged.connect(self._sort_changed)
        self.errors_only.toggled.connect(self._errors_toggled)
        self.unknown_only.toggled.connect(proxy.set_unknown_only)
        for signal in (proxy.rowsInserted, proxy.rowsRemoved, proxy.modelReset):
            signal.connect(self.update_count)
        proxy.filter_changed.connect(self.update_count)
        self._watched: object = None
        proxy.sourceModelChanged.connect(self._watch_source)
        self._watch_source()
        self.sync_from_proxy()

    def _watch_source(self) -> None:
        # Rows the filter hides change the total without any signal from the proxy.
        source = self.proxy.sourceModel()
        if source is not None and source is not self._watched:
            self._watched = source
            for signal in (source.rowsInserted, source.rowsRemoved, source.modelReset):
                signal.connect(self.update_count)

    def sync_from_proxy(self) -> None:
        """Show the proxy's current settings (e.g. after the window restored them)."""
        self.text.setText(self.proxy.label_filter)
        self.confidence.setValue(round(self.proxy.min_confidence * 100))
        self._show_confidence(self.confidence.value())
        self.sort.setCurrentIndex(max(self.sort.findData(self.proxy.sort_key), 0))
        self.errors_only.setChecked(self.proxy.error_mode == ERRORS_ONLY)
        self.unknown_only.setChecked(self.proxy.unknown_only)
        self.update_count()

    def _confidence_changed(self, percent: int) -> None:
        self._show_confidence(percent)
        self.proxy.set_min_confidence(percent / 100)

    def _show_confidence(self, percent: int) -> None:
        self.confidence_label.setText(f"≥ {percent} %" if percent else "any")

    def _sort_changed(self, _index: int) -> None:
        self.proxy.set_sort_key(self.sort.currentData())

    def _errors_toggled(self, checked: bool) -> None:
        self.proxy.set_error_mode(ERRORS_ONLY if checked else ERRORS_ALL)
        self.text.setPlaceholderText("Filter by error…" if checked else "Filter by label…")

    def update_count(self, *_args: object) -> None:
        """Refresh the "N of M images" label."""
        source = self.proxy.sourceModel()
        total = source.rowCount() if source is not None else 0
        shown = self.proxy.rowCount()
        noun = "image" if total == 1 else "images"
        self.count.setText(f"{total} {noun}" if shown == total else f"{shown} of {total} {noun}")


def change_filter(proxy: QSortFilterProxyModel, attribute: str, value: object) -> bool:
    """Set ``proxy.<attribute>`` (one of its filter's settings) to ``value`` and filter the rows
    again; False when it already was ``value`` (nothing to do)."""
    if getattr(proxy, attribute) == value:
        return False
    if hasattr(proxy, "beginFilterChange"):  # Qt >= 6.9
        proxy.beginFilterChange()
        setattr(proxy, attribute, value)
        proxy.endFilterChange(QSortFilterProxyModel.Direction.Rows)
    else:
        setattr(proxy, attribute, value)
        proxy.invalidateFilter()
    return True
