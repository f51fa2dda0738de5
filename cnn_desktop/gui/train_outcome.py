"""What the Train tab asks and says about a run's model: never replace an existing model
without asking, and make a model the active one only through *Use this model* (asking first
when its ONNX export check did not pass)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QWidget,
)

from cnn_desktop.core.models import BUNDLE_SUFFIX
from cnn_desktop.core.training import TrainResult, bundle_path, free_bundle_path
from cnn_desktop.core.versions import NO_TORCH, torch_installed

Yes, No = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No


def default_output(folder: str) -> str:
    """``<folder name>.cnnmodel`` next to the data folder, or ``<folder name>-2.cnnmodel`` …
    when that is taken: the default never names an existing model."""
    path = Path(folder)
    return str(free_bundle_path(path.parent / f"{path.name}{BUNDLE_SUFFIX}"))


class OutputChooser(QWidget):
    """The *Save to* row: where the run's model goes, and *Save as…*. Until the user chooses
    a path, it proposes a free name beside the data folder."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit(self)
        save_as = QPushButton("Save as…", self)
        save_as.clicked.connect(self._choose)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(save_as)
        self._default = ""

    def chosen(self) -> bool:
        """The user chose the path (it is not the proposed default)."""
        return self.edit.text().strip() not in ("", self._default)

    def suggest_for(self, folder: str) -> None:
        """Propose the default for the data ``folder``, unless the user chose a path."""
        if not self.chosen():
            self._default = default_output(folder)
            self.edit.setText(self._default)

    def path_for_run(self, folder: str) -> str | None:
        """Where a run on ``folder`` saves: the proposed default, made free again if it was
        taken meanwhile; or the chosen path if nothing is there or the user agrees to replace
        the model there. None: do not start."""
        if not self.chosen():
            self.suggest_for(folder)
            return self._default
        out = bundle_path(self.edit.text().strip())
        if out.exists() and not confirm_replace(self, out):
            return None
        return str(out)

    def _choose(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the model as", self.edit.text(), f"Model (*{BUNDLE_SUFFIX})"
        )
        if path:
            self.edit.setText(path)


def confirm_replace(parent: QWidget, out: Path) -> bool:
    """Ask whether the model at ``out`` may be replaced by the run about to start."""
    answer = QMessageBox.question(
        parent,
        "Replace the model?",
        f"{out} already exists.\n\nReplace it with the model this run trains? It is replaced "
        "only if the run finishes and its ONNX export check passes; otherwise the new model is "
        "saved next to it and the existing one is kept.",
        Yes | No,
        No,
    )
    return answer == Yes


def confirm_unverified(parent: QWidget, path: str) -> bool:
    """Ask whether a model whose export check did not pass should become the active one."""
    answer = QMessageBox.warning(
        parent,
        "Use an unverified model?",
        f"The ONNX export check of {path} did not pass: its predictions may differ from the "
        "model that was trained and evaluated.\n\nUse it anyway?",
        Yes | No,
        No,
    )
    return answer == Yes


def describe_use_button(button: QPushButton, result: TrainResult | None) -> None:
    """Say on the *Use this model* button what using the run's model means."""
    if result is None or result.export_verified:
        button.setText("Use this model")
        button.setToolTip(f"Classify with {result.bundle.path} from now on" if result else "")
    else:
        button.setText("Use this model anyway…")
        button.setToolTip(
            "Its ONNX export check did not pass: the saved model may not behave like the "
            "trained one. You will be asked to confirm."
        )


def disable_modes_without_torch(combo: QComboBox) -> None:
    """Grey out the modes that need PyTorch (full, scratch), saying why, in a build without it."""
    if torch_installed():
        return
    model = combo.model()
    assert isinstance(model, QStandardItemModel)
    for row in range(combo.count()):
        if combo.itemData(row) == "head":
            continue
        model.item(row).setEnabled(False)
        combo.setItemText(row, f"{combo.itemText(row)} (needs PyTorch)")
        combo.setItemData(row, f"Needs PyTorch: {NO_TORCH}", Qt.ItemDataRole.ToolTipRole)


def usable_mode(mode: str, known: Iterable[str]) -> str:
    """``mode`` if it is one of ``known`` and this installation can train it, else ``head``
    (e.g. a saved choice of ``full`` from a build with PyTorch, opened in one without)."""
    return mode if mode in known and (mode == "head" or torch_installed()) else "head"


def dropped_folder(event: QDragEnterEvent | QDropEvent) -> str | None:
    """The first folder among what is dragged over or dropped on the Train tab, if any."""
    paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
    return next((path for path in paths if Path(path).is_dir()), None)
