"""Job functions the window hands to the task runner (they run on worker threads)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtGui import QImage

from cnn_desktop.core.imaging import collect_image_paths, prune_folder
from cnn_desktop.core.inference import Prediction, classify_paths, open_classifier
from cnn_desktop.core.models import default_model_bundle, load_bundle
from cnn_desktop.core.training import prune_cache
from cnn_desktop.gui.qt_images import pil_to_qimage
from cnn_desktop.gui.runner import TaskContext
from cnn_desktop.gui.state import ActiveModel

THUMBNAIL_SIZE = 160


@dataclass(frozen=True)
class Listed:
    """The image files found in what the user dropped, the inputs that were not usable
    (errors) and the files that are not images (skipped, with their reasons)."""

    paths: list[Path]
    problems: list[tuple[Path, str]]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Classified:
    """One image's outcome, with a thumbnail ready for the UI, and the serial of the model
    (:attr:`ActiveModel.serial`) that gave it."""

    path: Path
    predictions: tuple[Prediction, ...]
    error: str | None
    thumbnail: QImage | None
    model_serial: int


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
    """A job that expands files/folders, then streams :class:`Listed` and :class:`Classified`
    (with ``tta``, probabilities averaged over the test-time augmentation views)."""

    serial = model.serial

    def job(context: TaskContext) -> int:
        paths, problems, skipped = collect_image_paths(inputs)
        context.emit(Listed(paths, problems, skipped))
        context.cancel.raise_if_cancelled()
        count = 0
        for result in classify_paths(
            paths,
            model.classifier,
            top_k=top_k,
            batch_size=batch_size,
            thumbnail_size=THUMBNAIL_SIZE,
            progress=context.progress,
            cancel=context.cancel,
            tta=tta,
        ):
            thumb = pil_to_qimage(result.thumbnail) if result.thumbnail is not None else None
            context.emit(Classified(result.path, result.predictions, result.error, thumb, serial))
            count += 1
        return count

    return job


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
