"""The Train tab's class maps: once a run's model is evaluated, where it looks for each class,
averaged over the class's validation images (all of its images where the split has none):
one tile per class, so a shortcut shows at a glance ("it looks at the snow, not the wolf").

The maps are computed on the task runner (a background job: progress, Cancel, one grouped
notice for the images left out) on ONNX Runtime, as ``cnn-desktop explain --per-class`` makes
them: the classic CAM where the network ends in a global pool, occlusion otherwise; the same
in the lite build, without PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnn_desktop.core.explain import ClassMap, Explainer, class_mean_maps
from cnn_desktop.core.inference import open_classifier
from cnn_desktop.core.models import ModelBundle
from cnn_desktop.core.training import ScanReport, TrainEvent
from cnn_desktop.gui.runner import TaskContext, TaskHandle, TaskRunner
from cnn_desktop.gui.state import Settings
from cnn_desktop.gui.widgets.class_maps import (
    ClassMapStrip,
    ClassMapTile,
    images_phrase,
    tile_image,
)

Items = list[tuple[Path, int]]
NAMED_FAILURES = 3
INTRO = "<b>Class maps</b> · where the model looks for each class (ring: the peak)"
INTRO_TIP = (
    "Each tile: the mean of the model's evidence for a class over that class's images (its "
    "validation images where the split has some), drawn over the mean of those images as the "
    "model sees them. A map away from the object reveals a shortcut (the snow, not the wolf)."
)


def evaluated_items(
    report: ScanReport, split: Any, class_names: Sequence[str]
) -> tuple[Items, dict[int, str]]:
    """The images the class maps are made of, with the model's class indices: the part of the
    split the run is evaluated on (test, else validation), and all of a class's images where
    that part has none of it; and each class's source (``test``, ``val`` or ``all``)."""
    part, source = (split.test, "test") if split.test else (split.val, "val")
    index = {name: i for i, name in enumerate(class_names)}
    items: Items = []
    sources: dict[int, str] = {}
    for path, label in part:
        model_index = index.get(report.classes[label], -1)
        if model_index >= 0:
            items.append((Path(path), model_index))
            sources[model_index] = source
    for label, name in enumerate(report.classes):
        model_index = index.get(name, -1)
        if model_index < 0 or model_index in sources:
            continue
        everything = [p for group in report.items.values() for p, lab in group if lab == label]
        items += [(Path(path), model_index) for path in sorted(everything, key=str)]
        sources[model_index] = "all"
    return items, sources


def class_maps_job(bundle: ModelBundle, items: Items, device: str) -> Callable[[TaskContext], int]:
    """A job that streams ``(ClassMap, tile QImage)`` for each class among ``items``, computed
    on ONNX Runtime on ``device``; it returns how many classes it mapped."""

    def job(context: TaskContext) -> int:
        context.progress(0.0, f"Class maps: opening {bundle.spec.name}…")
        classifier = open_classifier(bundle, "onnx", device)
        explainer = Explainer(bundle, classifier)
        mapped = 0
        for class_map in class_mean_maps(
            items, explainer, classifier, progress=context.progress, cancel=context.cancel
        ):
            context.emit((class_map, tile_image(class_map)))
            mapped += 1
        return mapped

    return job


def failures_notice(class_maps: Sequence[ClassMap]) -> str:
    """One line about the images left out of the maps ("" when none was)."""
    failed = [(path, reason) for m in class_maps for path, reason in m.failed]
    if not failed:
        return ""
    named = ", ".join(f"{path.name} ({reason})" for path, reason in failed[:NAMED_FAILURES])
    more = f" and {len(failed) - NAMED_FAILURES} more" if len(failed) > NAMED_FAILURES else ""
    count = f"{len(failed)} image{'' if len(failed) == 1 else 's'}"
    return f"Class maps: {count} could not be explained and were left out: {named}{more}"


class ClassMapsPanel(QWidget):
    """The class-map tiles of the latest run, with progress, Cancel and *Compute again*."""

    message = Signal(str)
    error = Signal(str)

    def __init__(
        self, runner: TaskRunner, settings: Settings, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.settings = settings
        self.handle: TaskHandle | None = None
        self.bundle: ModelBundle | None = None
        self.items: Items = []
        self.sources: dict[int, str] = {}
        self.maps: list[ClassMap] = []
        self._scanned: tuple[ScanReport, Any] | None = None
        self.intro = QLabel(INTRO, self)
        self.intro.setToolTip(INTRO_TIP)
        self.status = QLabel(self)
        self.status.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Preferred)
        self.progress = QProgressBar(self, minimum=0, maximum=1000)
        self.progress.setMaximumWidth(160)
        self.cancel_button = QPushButton("Cancel", self, clicked=self.cancel)
        self.again_button = QPushButton("Compute again", self, clicked=lambda: self.start())
        self.again_button.setToolTip("Read the images again (after fixing or replacing some)")
        self.strip = ClassMapStrip(self)
        top = QHBoxLayout()
        top.addWidget(self.intro, 1)
        for widget in (self.status, self.progress, self.cancel_button, self.again_button):
            top.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.strip, 1)
        self.setVisible(False)  # until a run's model is evaluated
        self._update_enabled()

    # ----- following a training run --------------------------------------------------------
    def follow(self, training: TaskHandle) -> None:
        """Watch a training run: once its model is evaluated, map its classes."""
        self.cancel()
        self._scanned, self.bundle, self.maps = None, None, []
        self.strip.clear()  # an older run's maps are not this one's
        self.status.setText("Maps follow when the run is evaluated.")
        self._update_enabled()
        training.item.connect(self._on_train_event)

    def _on_train_event(self, event: TrainEvent) -> None:
        if event.kind == "scan" and event.data:
            self._scanned = (event.data["report"], event.data["split"])
        elif event.kind in ("done", "cancelled") and event.result is not None:
            bundle = event.result.bundle
            if self._scanned is None:
                return
            items, sources = evaluated_items(*self._scanned, bundle.spec.class_names)
            self.show_maps(bundle, items, sources)

    # ----- the maps ------------------------------------------------------------------------
    def show_maps(
        self, bundle: ModelBundle, items: Items, sources: dict[int, str] | None = None
    ) -> TaskHandle | None:
        """Map the classes of ``bundle`` over ``items`` (``(path, class index)``) in the
        background; ``sources`` says per class index where its images come from."""
        self.bundle, self.items = bundle, list(items)
        self.sources = dict(sources or {})
        return self.start()

    def start(self) -> TaskHandle | None:
        """Compute the maps of the current model and images again (None if there is none)."""
        if self.bundle is None:
            return None
        self.cancel()
        self.maps = []
        self.strip.clear()
        if self.isHidden():
            self.setVisible(True)
            self._claim_room()
        self.progress.setValue(0)
        self.status.setText("Computing…")
        self.handle = handle = self.runner.submit(
            "Class maps",
            class_maps_job(self.bundle, self.items, self.settings.device),
            key="class-maps",
            on_item=lambda item: self._add(handle, *item),
            on_progress=lambda fraction, _text: self._progressed(handle, fraction),
            on_result=lambda _count: self._done(handle),
            on_error=lambda text: self._failed(handle, text),
            on_finished=lambda: self._finished(handle),
        )
        handle.cancelled.connect(lambda: self._is_current(handle) and self._cancelled())
        self._update_enabled()
        return handle

    def _claim_room(self) -> None:
        """Shown in a splitter: take the height of one row of tiles from the parts above, the
        first (the curves) first, each down to half its height at most."""
        splitter = self.parentWidget()
        if not isinstance(splitter, QSplitter):
            return
        sizes = splitter.sizes()
        mine = splitter.indexOf(self)
        wanted = max(0, self.sizeHint().height() - sizes[mine])
        for other in (i for i in range(len(sizes)) if i != mine):
            taken = min(wanted, sizes[other] // 2)
            sizes[other] -= taken
            sizes[mine] += taken
            wanted -= taken
        splitter.setSizes(sizes)

    def cancel(self) -> None:
        """Stop computing the maps."""
        if self.handle is not None:
            self.handle.cancel()

    def _is_current(self, handle: TaskHandle) -> bool:
        return handle is self.handle

    def _add(self, handle: TaskHandle, class_map: ClassMap, image: Any) -> None:
        if not self._is_current(handle):
            return
        self.maps.append(class_map)
        source = self.sources.get(class_map.class_index, "")
        self.strip.add(ClassMapTile(class_map, image, source, self.strip))

    def _progressed(self, handle: TaskHandle, fraction: float) -> None:
        if self._is_current(handle):
            self.progress.setValue(round(fraction * 1000))

    def _done(self, handle: TaskHandle) -> None:
        if not self._is_current(handle):
            return
        self.progress.setValue(1000)
        images = images_phrase(sum(m.count for m in self.maps), self._common_source())
        self.status.setText(f"{len(self.maps)} classes, {images}")
        notice = failures_notice(self.maps)
        if notice:
            self.error.emit(notice)

    def _common_source(self) -> str:
        """``val`` or ``test`` when every class's images come from that part, else ``""``."""
        sources = {self.sources.get(m.class_index, "") for m in self.maps}
        return sources.pop() if len(sources) == 1 else ""

    def _failed(self, handle: TaskHandle, text: str) -> None:
        if self._is_current(handle):
            self.status.setText("Failed")
            self.error.emit(f"Class maps failed: {text}")

    def _cancelled(self) -> None:
        self.status.setText("Cancelled")

    def _finished(self, handle: TaskHandle) -> None:
        if self._is_current(handle):
            self.handle = None
            self._update_enabled()

    def _update_enabled(self) -> None:
        running = self.handle is not None
        self.progress.setVisible(running)
        self.cancel_button.setEnabled(running)
        self.again_button.setEnabled(not running and self.bundle is not None)


def add_class_maps(train_panel: Any, splitter: QSplitter) -> ClassMapsPanel:
    """The class maps under the Train tab's results, reporting through its notifications."""
    panel = ClassMapsPanel(train_panel.runner, train_panel.settings, splitter)
    panel.message.connect(train_panel.message)
    panel.error.connect(train_panel.error)
    splitter.addWidget(panel)
    return panel
