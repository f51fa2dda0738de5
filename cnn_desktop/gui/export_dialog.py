"""File → Export Model…: save the window's model as a new bundle, optionally quantized to INT8,
as a background job on the window's task runner, with progress and the parity report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cnn_desktop.core.export import ExportResult, export_model, is_int8, report_lines
from cnn_desktop.core.models import BUNDLE_SUFFIX, ModelBundle
from cnn_desktop.gui.runner import TaskContext, TaskHandle, TaskRunner

if TYPE_CHECKING:
    from cnn_desktop.gui.main_window import MainWindow


def open_export_dialog(window: MainWindow) -> ExportDialog:
    """Show the export dialog for the window's model (one dialog per window, reused)."""
    dialog = getattr(window, "_export_dialog", None)
    if dialog is None:
        dialog = ExportDialog(window.runner, window)
        dialog.exported.connect(window.notifications.info)  # type: ignore[attr-defined]
        window._export_dialog = dialog  # type: ignore[attr-defined]
    model = window.active_model
    dialog.set_model(model.bundle if model is not None else None, window.settings.last_folder)
    dialog.show()
    dialog.raise_()
    return dialog


def _row(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    return row


class ExportDialog(QDialog):
    """Where to, float or INT8, which calibration images; then the export runs in the
    background and the dialog shows its progress and its parity report."""

    exported = Signal(str)  # a one-line summary, for the window's notification area

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export Model")
        self.runner = runner
        self.bundle: ModelBundle | None = None
        self.handle: TaskHandle | None = None
        self.model_label = QLabel(self)
        self.out_edit = QLineEdit(self)
        self.out_button = QPushButton("Choose…", self)
        self.out_button.clicked.connect(self._choose_out)
        self.int8_box = QCheckBox("INT8 (quantized: faster, compared with the original)", self)
        self.calibration_edit = QLineEdit(self)
        self.calibration_edit.setPlaceholderText("empty: the model's own validation images")
        self.calibration_button = QPushButton("Choose…", self)
        self.calibration_button.clicked.connect(self._choose_calibration)
        self.replace_box = QCheckBox("Replace a model already there", self)
        self.int8_box.toggled.connect(self._sync)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.report = QLabel(self)
        self.report.setWordWrap(True)
        self.buttons = QDialogButtonBox(self)
        accept = QDialogButtonBox.ButtonRole.AcceptRole
        self.export_button = self.buttons.addButton("Export", accept)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.export_button.clicked.connect(self.start)
        self.close_button.clicked.connect(self._close_or_cancel)
        form = QFormLayout()
        form.addRow("Model:", self.model_label)
        form.addRow("Save as:", _row(self.out_edit, self.out_button))
        form.addRow("", self.int8_box)
        form.addRow("Calibration images:", _row(self.calibration_edit, self.calibration_button))
        form.addRow("", self.replace_box)
        layout = QVBoxLayout(self)
        for item in (form, self.progress, self.status, self.report, self.buttons):
            (layout.addLayout if isinstance(item, QFormLayout) else layout.addWidget)(item)
        self._sync()

    def set_model(self, bundle: ModelBundle | None, folder: str) -> None:
        """The model to export, and a proposed output name in ``folder``."""
        if self.running:
            return
        self.bundle = bundle
        self.model_label.setText(bundle.name if bundle is not None else "No model is open yet")
        if bundle is not None and not self.out_edit.text():
            stem = Path(bundle.path).name.removesuffix(BUNDLE_SUFFIX).removesuffix(".onnx")
            base = Path(folder) if folder and Path(folder).is_dir() else Path.home()
            self.out_edit.setText(str(base / f"{stem}-export{BUNDLE_SUFFIX}"))
        self.int8_box.setEnabled(bundle is not None and not is_int8(bundle.spec))
        self._sync()

    @property
    def running(self) -> bool:
        """Whether an export is in progress."""
        return self.handle is not None

    def _sync(self) -> None:
        idle = not self.running
        int8 = self.int8_box.isChecked() and self.int8_box.isEnabled()
        for widget in (self.out_edit, self.out_button, self.replace_box):
            widget.setEnabled(idle)
        self.calibration_edit.setEnabled(idle and int8)
        self.calibration_button.setEnabled(idle and int8)
        self.export_button.setEnabled(idle and self.bundle is not None)
        self.close_button.setText("Cancel" if self.running else "Close")
        self.progress.setVisible(self.running)

    def _choose_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export Model", self.out_edit.text())
        if path:
            self.out_edit.setText(path)

    def _choose_calibration(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Calibration Images")
        if folder:
            self.calibration_edit.setText(folder)

    def start(self) -> None:
        """Run the export with the dialog's choices on the runner's background threads."""
        if self.bundle is None or self.running:
            return
        bundle, out = self.bundle, self.out_edit.text().strip()
        int8 = self.int8_box.isChecked() and self.int8_box.isEnabled()
        calibration = self.calibration_edit.text().strip() if int8 else ""
        force = self.replace_box.isChecked()
        if not out:
            self.status.setText("Choose where to save the exported model.")
            return

        def job(context: TaskContext) -> ExportResult:
            return export_model(
                bundle,
                out,
                int8=int8,
                calibration=calibration or None,
                force=force,
                progress=context.progress,
                cancel=context.cancel,
            )

        self.report.clear()
        self.progress.setValue(0)
        self.status.setText("Exporting…")
        self.handle = self.runner.submit(
            "Export model",
            job,
            key="export",
            on_result=self._done,
            on_progress=self._progressed,
            on_error=lambda message: self.status.setText(f"Export failed: {message}"),
            on_finished=self._ended,
        )
        self._sync()

    def _progressed(self, fraction: float, message: str) -> None:
        self.progress.setValue(round(fraction * 1000))
        if message:
            self.status.setText(message)

    def _done(self, result: ExportResult) -> None:
        path = result.bundle.path
        self.status.setText(f"Saved {path}")
        if result.report is None:
            self.exported.emit(f"Exported {result.bundle.name} to {path}")
            return
        self.report.setText("\n".join(report_lines(result.report)))
        report = result.report
        self.exported.emit(
            f"Exported the INT8 model to {path}: {report['speed']['int8_speedup']:.1f}x faster, "
            f"{report['top1_agreement']:.0%} top-1 agreement with the original"
        )

    def _ended(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None and handle.is_cancelled and handle.failure is None:
            self.status.setText("Cancelled; nothing saved.")
        self._sync()

    def _close_or_cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        else:
            self.close()
