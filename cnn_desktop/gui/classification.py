"""How the main window classifies: batches on the task runner, results that belong to the
model that is active now, and an image shown with the CAM of a chosen class.

A mixin of :class:`cnn_desktop.gui.main_window.MainWindow`; it relies on the window's
``runner``, ``settings``, ``results``, ``active_model``, ``explain``, ``notifications``,
``train_panel``, ``gallery``, ``filter_model``, ``pages``, ``mode_tabs`` and its progress
widgets.

Every result carries the serial of the model that computed it and is dropped unless that
model is still the active one; a model switch or a Top-K change stops every batch and
classifies again what is listed, and what was given but not listed completely yet (a folder
still being walked: its images are classified while the walk goes on).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnn_desktop.core.imaging import summarize_skipped
from cnn_desktop.core.models import ModelBundle
from cnn_desktop.core.tasks import CancelToken
from cnn_desktop.gui import jobs
from cnn_desktop.gui.error_reporting import FailedFiles
from cnn_desktop.gui.state import ActiveModel


@dataclass
class _Batch:
    """One classification job: what it was given, and whether that still has to be listed
    if the classification starts again (not once its last Listed part arrived, or it was
    stopped)."""

    inputs: list[Path]
    cancel: CancelToken
    failures: FailedFiles  # one summary in the notification bar, not one error per file
    to_list: bool = True
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # summarised once listed
    found: bool = False  # an image or a problem was listed


@dataclass(frozen=True)
class _Focus:
    """An image to show with the CAM of ``class_index`` of ``model`` once it is classified."""

    path: Path
    class_index: int
    model: ModelBundle | None  # the model the class index belongs to


def same_model(a: ModelBundle | None, b: ModelBundle | None) -> bool:
    """Whether two bundles are the same model: the same file and the same spec."""
    if a is None or b is None:
        return False
    return a.path.resolve() == b.path.resolve() and a.spec == b.spec


class WindowClassification:
    """Batches of images classified by the active model, and results kept true to it."""

    runner: Any
    settings: Any
    results: Any
    active_model: ActiveModel | None
    explain: Any
    notifications: Any
    train_panel: Any
    gallery: Any
    filter_model: Any
    pages: Any
    mode_tabs: Any
    progress: Any
    progress_label: Any
    cancel_button: Any

    def _start_classification(self) -> None:
        self._waiting_inputs: list[Path] = []
        self._focus: _Focus | None = None  # image to show with a CAM once classified
        self._batches: list[_Batch] = []
        # Bumped by "Clear", a model switch and a Top-K change: results still queued from
        # older batches are dropped.
        self._generation = 0

    def show_image_with_cam(self, path: str, class_index: int) -> None:
        """Classify one image with the active model and show its CAM for ``class_index``, a
        class of the model the Train tab shows (the top class if another model is active)."""
        self.mode_tabs.setCurrentIndex(0)
        trained = self.train_panel.results.result
        self._focus = _Focus(Path(path), class_index, trained.bundle if trained else None)
        self.add_inputs([Path(path)])

    def _show_focus(self, model: ActiveModel, entry_path: Path, top_index: int | None) -> None:
        focus, self._focus = self._focus, None
        assert focus is not None
        self._select_path(entry_path)
        self.explain.show_tab("prediction")
        if same_model(focus.model, model.bundle):
            self.explain.prediction.explain_class(focus.class_index)
            return
        if top_index is not None:
            self.explain.prediction.explain_class(top_index)
        trained = focus.model.spec.name if focus.model is not None else "the trained model"
        self.notifications.info(
            f"{entry_path.name}: the map shows the top class of {model.bundle.spec.name}, "
            f"the active model; to see {trained}'s classes, click “Use this model”"
        )

    def add_inputs(self, inputs: list[Path]) -> None:
        """Classify image files and folders (queued until a model is ready)."""
        if not inputs:
            return
        self.pages.setCurrentIndex(1)
        if self.active_model is None:
            self._waiting_inputs.extend(inputs)
            self.results.add_pending([p for p in inputs if p.is_file()])
            return
        self._classify(inputs)

    def reclassify(self) -> None:
        """Stop every batch and classify again, with the active model and settings, every
        image listed and every input whose files were not listed yet."""
        listed = [e.path for e in self.results.entries()]
        unlisted = [p for batch in self._batches if batch.to_list for p in batch.inputs]
        unlisted = [*self._waiting_inputs, *unlisted]
        self.cancel_classification()
        self._generation += 1
        self._waiting_inputs = []
        inputs = list(dict.fromkeys([*listed, *unlisted]))
        if self.active_model is None:
            self._waiting_inputs = inputs
        elif inputs:
            self.results.add_pending([*listed, *(p for p in unlisted if p.is_file())])
            self._classify(inputs)

    def _classify(self, inputs: list[Path]) -> None:
        model = self.active_model
        assert model is not None
        self.progress.setValue(0)
        for widget in (self.progress, self.progress_label, self.cancel_button):
            widget.setVisible(True)
        generation = self._generation
        started = time.monotonic()
        batch = _Batch(list(inputs), CancelToken(), FailedFiles(self.notifications))
        handle = self.runner.submit(
            "Classify",
            jobs.classify_inputs(inputs, model, self.settings.top_k, tta=self.settings.tta),
            on_item=lambda item: self._on_classify_item(item, batch, generation),
            on_progress=lambda f, m: self._show_progress(f, m, started),
            on_finished=lambda: self._classify_finished(batch),
        )
        batch.cancel = handle.token
        self._batches.append(batch)

    def _show_progress(self, fraction: float, message: str, started: float) -> None:
        self.progress.setValue(round(fraction * 1000))
        elapsed = time.monotonic() - started
        eta = elapsed / fraction - elapsed if fraction > 0.02 else None
        self.progress_label.setText(message + (f" · {eta:.0f} s left" if eta else ""))

    def _on_classify_item(self, item: object, batch: _Batch, generation: int) -> None:
        if generation != self._generation:
            return
        if isinstance(item, jobs.Listed):  # a part of the walk; the last one is complete
            self.results.add_pending(item.paths)
            for path, reason in item.problems:
                batch.failures.add(str(path), reason)
            batch.skipped.extend(item.skipped)
            batch.found = batch.found or bool(item.paths or item.problems)
            if item.complete:
                batch.to_list = False
                if batch.skipped:
                    self.notifications.info(summarize_skipped(batch.skipped))
                if not batch.found:
                    self.notifications.info("No images found in what was dropped")
            if item.paths and not self.gallery.currentIndex().isValid():
                self._select_path(item.paths[0])
        elif isinstance(item, jobs.Classified):
            model = self.active_model
            if model is None or item.model_serial != model.serial:
                return
            self.results.set_result(
                item.path,
                item.predictions,
                item.error,
                item.thumbnail,
                item.model_serial,
                unknown=item.unknown,
            )
            if item.error is not None:  # also shown on its tile and in the results table
                batch.failures.add(item.path.name, item.error)
            if self._focus is not None and self._focus.path == item.path:
                top = item.predictions[0].index if item.predictions else None
                self._show_focus(model, item.path, top)

    def _select_path(self, path: Path) -> None:
        row = self.results.row_of(path)
        if row is not None:
            proxy_index = self.filter_model.mapFromSource(self.results.index(row))
            if proxy_index.isValid():
                self.gallery.setCurrentIndex(proxy_index)

    def _classify_finished(self, batch: _Batch) -> None:
        self._batches = [b for b in self._batches if b is not batch]
        batch.failures.finish()
        if not self._batches:
            for widget in (self.progress, self.progress_label, self.cancel_button):
                widget.setVisible(False)

    def cancel_classification(self) -> None:
        """Stop every running batch; finished results stay."""
        for batch in self._batches:
            batch.cancel.cancel()
            batch.to_list = False

    def clear_images(self) -> None:
        """Forget every image."""
        self.cancel_classification()
        self._generation += 1
        self._waiting_inputs = []
        self.results.clear()
        self.explain.set_image(None)
        self.pages.setCurrentIndex(0)
