"""Job functions the window hands to the task runner (they run on worker threads)."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtGui import QImage

from cnn_desktop.core.imaging import WalkEntry, prune_folder, walk_images
from cnn_desktop.core.inference import Prediction, classify_paths, open_classifier
from cnn_desktop.core.models import default_model_bundle, load_bundle
from cnn_desktop.core.training import prune_cache
from cnn_desktop.gui.qt_images import pil_to_qimage
from cnn_desktop.gui.runner import TaskContext
from cnn_desktop.gui.state import ActiveModel

THUMBNAIL_SIZE = 160
LISTED_INTERVAL_S = 0.1
"""How often, at least, a folder walk sends what it found so far to the window (while the
classification asks for paths)."""


@dataclass(frozen=True)
class Listed:
    """Image files found in what the user dropped, the inputs that were not usable (errors)
    and the files that are not images (skipped, with their reasons): one part of the walk, in
    walk order; ``complete`` on the last part."""

    paths: list[Path]
    problems: list[tuple[Path, str]]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    complete: bool = True


@dataclass(frozen=True)
class Classified:
    """One image's outcome, with a thumbnail ready for the UI, and the serial of the model
    (:attr:`ActiveModel.serial`) that gave it; ``unknown`` is the model's unknown verdict
    (None when it has no detector)."""

    path: Path
    predictions: tuple[Prediction, ...]
    error: str | None
    thumbnail: QImage | None
    model_serial: int
    unknown: bool | None = None


def load_model(model_path: str | None, backend: str, device: str):
    """A job that opens a model (the built-in one when ``model_path`` is None)."""

    def job(context: TaskContext) -> ActiveModel:
        def progress(fraction: float, message: str) -> None:
            if message.startswith("Warning: "):  # e.g. the model cache cannot be written
                context.notify(message.removeprefix("Warning: "))
            context.progress(fraction, message)

        if model_path:
            context.progress(0.0, f"Opening {Path(model_path).name}…")
            bundle = load_bundle(model_path)
        else:
            bundle = default_model_bundle(progress)
        context.cancel.raise_if_cancelled()
        classifier = open_classifier(bundle, backend, device)
        context.notify(classifier.notice)  # e.g. CUDA failed: the CPU runs the model
        return ActiveModel(bundle, classifier)

    return job


def classify_inputs(
    inputs: Sequence[Path],
    model: ActiveModel,
    top_k: int,
    batch_size: int | None = None,
    *,
    tta: bool = False,
):
    """A job that walks files/folders and classifies the images while the walk goes on,
    streaming :class:`Listed` parts and one :class:`Classified` per image (with ``tta``,
    probabilities averaged over the test-time augmentation views)."""

    serial = model.serial

    def job(context: TaskContext) -> int:
        walk = _WalkAhead(inputs, context)
        count = 0
        try:
            for result in classify_paths(
                walk.image_paths(),
                model.classifier,
                top_k=top_k,
                batch_size=batch_size,
                thumbnail_size=THUMBNAIL_SIZE,
                cancel=context.cancel,
                tta=tta,
            ):
                thumb = pil_to_qimage(result.thumbnail) if result.thumbnail is not None else None
                context.emit(
                    Classified(
                        result.path, result.predictions, result.error, thumb, serial, result.unknown
                    )
                )
                count += 1
                listed = max(walk.images, count)
                more = "" if walk.complete else ", listing…"
                context.progress(count / listed, f"{count}/{listed} images{more}")
        finally:
            walk.stop()
        return count

    return job


class _WalkAhead:
    """A folder walk on its own thread, running ahead of the classification.

    :meth:`image_paths` takes what the walk found so far whenever the classification wants a
    path it does not have yet, and at least every :data:`LISTED_INTERVAL_S`, sends it to the
    window as one :class:`Listed` part and then hands its image paths on: the window lists
    rows before their results come, and a walk that stalls (a slow drive) never holds back
    the images it found already.
    """

    _END = WalkEntry(Path(), "problem", "end of the walk")
    _MAX_PART = 1_000  # rows the window adds at once: ~0.1 s of its thread at most

    def __init__(self, inputs: Sequence[Path], context: TaskContext) -> None:
        self._inputs = list(inputs)
        self._context = context
        self._found: queue.SimpleQueue[WalkEntry] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._failure: BaseException | None = None
        self.images = 0
        """Image files listed so far."""
        self.complete = False
        """Whether the walk has ended (everything it found is listed)."""
        self._thread = threading.Thread(target=self._walk, name="classify-walk", daemon=True)
        self._thread.start()

    def _walk(self) -> None:
        try:
            for entry in walk_images(self._inputs):
                if self._stopped.is_set() or self._context.cancel.cancelled:
                    return
                self._found.put(entry)
        except BaseException as exc:  # handed to the job's thread, which raises it
            self._failure = exc
        finally:
            self._found.put(self._END)

    def image_paths(self) -> Iterator[Path]:
        """The image files, as the walk finds them (raises Cancelled once the job is)."""
        ready: deque[Path] = deque()
        listed_at = 0.0
        while ready or not self.complete:
            due = not ready or time.monotonic() - listed_at > LISTED_INTERVAL_S
            if due and not self.complete:
                ready.extend(self._list_more(wait=not ready))
                listed_at = time.monotonic()
            if ready:
                yield ready.popleft()
        if self._failure is not None:
            raise self._failure

    def _list_more(self, *, wait: bool) -> list[Path]:
        """Send what the walk found since the last call as one :class:`Listed` part (when
        ``wait``, after waiting for at least one entry) and return its image paths."""
        part = Listed([], [], [], complete=False)
        for _ in range(self._MAX_PART):
            try:
                if wait:
                    entry = self._found.get(timeout=LISTED_INTERVAL_S)
                else:
                    entry = self._found.get_nowait()
            except queue.Empty:
                if not wait:
                    break
                self._context.cancel.raise_if_cancelled()
                continue
            wait = False
            if entry is self._END:
                self.complete = True
                break
            if entry.outcome == "image":
                part.paths.append(entry.path)
            else:
                group = part.problems if entry.outcome == "problem" else part.skipped
                group.append((entry.path, entry.reason or ""))
        if part.paths or part.problems or part.skipped or self.complete:
            self._context.emit(dataclasses.replace(part, complete=self.complete))
            self.images += len(part.paths)
        return part.paths

    def stop(self) -> None:
        """Stop the walk and wait for its thread (it stops at its next entry)."""
        self._stopped.set()
        self._thread.join()


def tidy_caches(
    pasted: Path,
    pasted_prefix: str,
    pasted_max_bytes: int,
    pasted_max_age_s: float,
    embeddings: Path,
    embeddings_max_bytes: int,
):
    """A job that deletes old pasted images and keeps the embedding cache under its limit;
    it returns how many files went."""

    def job(_context: TaskContext) -> int:
        deleted = prune_folder(
            pasted,
            max_bytes=pasted_max_bytes,
            max_age_s=pasted_max_age_s,
            pattern=f"{pasted_prefix}*",
        )
        return len(deleted) + len(prune_cache(embeddings, embeddings_max_bytes))

    return job
