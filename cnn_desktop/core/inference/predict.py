"""Batched prediction: decoding on a thread pool overlapped with inference.

Decoding (Pillow releases the GIL) runs ahead of the model by a bounded window, so memory stays
flat for folders of any size, and results come back in input order, one per image. A file that
cannot be read becomes an error result; it never stops the batch.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image

from cnn_desktop.core.imaging.decode_warnings import decode_warnings
from cnn_desktop.core.imaging.loading import ImageLoadError, load_image
from cnn_desktop.core.imaging.preprocess import decode_min_side, preprocess_image
from cnn_desktop.core.inference.backends.base import Classifier
from cnn_desktop.core.inference.devices import cpu_threads
from cnn_desktop.core.inference.tta import averaged_then_plain, tta_views
from cnn_desktop.core.inference.unknown import choose_detector, scored_inference
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.tasks import Cancelled, CancelToken, ProgressCallback, no_progress

# Measured on a 2-core CPU (benchmarks/bench_classify.py): small batches keep both cores busy
# to the end of a folder; a GPU wants larger ones.
CPU_BATCH_SIZE = 8
GPU_BATCH_SIZE = 32
_Decoded = tuple[np.ndarray, "Image.Image | None", tuple[str, ...]]
Preprocess = Callable[[Image.Image, ModelSpec], np.ndarray]


@dataclass(frozen=True)
class Prediction:
    """One class the model considers, with its probability."""

    label: str
    index: int
    confidence: float


@dataclass(frozen=True)
class ImageResult:
    """The outcome for one image: its top predictions, or why it could not be classified.

    ``warnings`` are what the decoder reported about a damaged but readable file (a corrupt
    EXIF block, an unreadable colour profile); the image was still classified.

    ``unknown`` is the model's unknown detector's verdict: True when the image is like none
    of the classes (the predictions are then the closest classes), False when it is one of
    them, None when it was not decided (no detector, or ``unknown="off"``).

    ``plain_index`` is, with test-time augmentation, the top class of the plain image alone
    (the predictions are then averaged over the views); None without it.
    """

    path: Path
    predictions: tuple[Prediction, ...] = ()
    error: str | None = None
    thumbnail: Image.Image | None = None
    warnings: tuple[str, ...] = ()
    unknown: bool | None = None
    plain_index: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the image was classified."""
        return self.error is None

    def to_dict(self) -> dict[str, object]:
        """The JSON form printed by ``classify --format json``."""
        if self.error is not None:
            return {"path": str(self.path), "error": self.error}
        data: dict[str, object] = {
            "path": str(self.path),
            "unknown": self.unknown,
            "predictions": [
                {"label": p.label, "index": p.index, "confidence": round(p.confidence, 6)}
                for p in self.predictions
            ],
        }
        if self.warnings:
            data["warnings"] = list(self.warnings)
        return data


def top_predictions(
    probabilities: np.ndarray, class_names: Sequence[str], k: int
) -> tuple[Prediction, ...]:
    """The ``k`` most probable classes of one probability vector, best first."""
    k = max(1, min(k, len(class_names)))
    order = np.argsort(-probabilities, kind="stable")[:k]
    return tuple(Prediction(class_names[i], int(i), float(probabilities[i])) for i in order)


def classify_image(
    classifier: Classifier, image: Image.Image, top_k: int = 5
) -> tuple[Prediction, ...]:
    """Classify an already-loaded RGB image (e.g. pasted from the clipboard)."""
    batch = preprocess_image(image, classifier.spec)[None]
    probabilities = classifier.predict(batch)[0]
    return top_predictions(probabilities, classifier.spec.class_names, top_k)


def suggested_batch_size(classifier: Classifier) -> int:
    """The batch size that classifies fastest on the classifier's device (the model's own
    when its graph fixes one)."""
    fixed = getattr(classifier, "fixed_batch_size", None)
    if fixed:
        return int(fixed)
    return GPU_BATCH_SIZE if classifier.uses_gpu else CPU_BATCH_SIZE


def default_workers() -> int:
    """Pipeline workers: one per core, at most 8."""
    return min(8, cpu_threads())


def _decode(
    path: Path, spec: ModelSpec, thumbnail_size: int | None, preprocess: Preprocess
) -> _Decoded:
    image = load_image(path, min_side=max(decode_min_side(spec), thumbnail_size or 0))
    thumbnail = None
    if thumbnail_size:
        thumbnail = image.copy()
        thumbnail.thumbnail((thumbnail_size, thumbnail_size), Image.Resampling.BILINEAR)
    return preprocess(image, spec), thumbnail, decode_warnings(image)


@dataclass(frozen=True)
class RawOutput:
    """One image's row of model output, or why it could not be read."""

    path: Path
    output: np.ndarray | None
    error: str | None = None
    thumbnail: Image.Image | None = None
    warnings: tuple[str, ...] = ()


def run_on_paths(
    paths: Iterable[str | os.PathLike[str]],
    spec: ModelSpec,
    infer: Callable[[np.ndarray], np.ndarray],
    *,
    batch_size: int,
    workers: int | None = None,
    thumbnail_size: int | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    preprocess: Preprocess = preprocess_image,
) -> Iterator[RawOutput]:
    """Decode image files and run ``infer`` on batches of them, yielding rows in input order.

    Each worker takes the next batch of paths, decodes it and runs ``infer`` on it; with one
    worker per core (and single-threaded ONNX Runtime sessions on the CPU) one core decodes
    while another infers, with no oversubscription. At most ``workers + 1`` batches are in
    flight, so memory stays flat for folders of any size. ``paths`` is read lazily, a batch at a
    time (a folder walk can feed it while it goes on); when it has no length, progress reports
    a count with a fraction of 0. Unreadable files become rows with an error, and so does every
    image of a batch whose ``infer`` call fails or returns the wrong number of rows; neither
    stops the run. ``preprocess`` turns a decoded image into what ``infer`` takes one row of
    (``tta_views`` gives a row of views).
    """
    total = len(paths) if isinstance(paths, Sized) else None
    items = (Path(p) for p in paths)
    batch_size = max(1, batch_size)
    batches = iter(lambda: list(islice(items, batch_size)), [])
    workers = workers or default_workers()
    halt = CancelToken()  # set when the caller stops iterating, so workers stop too
    done = 0

    def run_batch(batch: list[Path]) -> list[RawOutput]:
        decoded: list[tuple[Path, _Decoded | str]] = []
        for path in batch:
            halt.raise_if_cancelled()
            if cancel is not None:
                cancel.raise_if_cancelled()
            decoded.append((path, _decode_or_error(path, spec, thumbnail_size, preprocess)))
        tensors = [item[0] for _, item in decoded if not isinstance(item, str)]
        outputs, failure = _infer_or_error(infer, tensors)
        rows, row = [], 0
        for path, item in decoded:
            if isinstance(item, str):
                rows.append(RawOutput(path, None, item))
            elif failure is not None:
                rows.append(RawOutput(path, None, failure))
            else:
                rows.append(RawOutput(path, outputs[row], None, item[1], item[2]))
                row += 1
        return rows

    with ThreadPoolExecutor(workers, "classify") as pool:
        pending: deque[Future[list[RawOutput]]] = deque()
        try:
            while True:
                while len(pending) <= workers and (batch := next(batches, None)) is not None:
                    pending.append(pool.submit(run_batch, batch))
                if not pending:
                    break
                if cancel is not None:
                    cancel.raise_if_cancelled()
                results = pending.popleft().result()
                yield from results
                done += len(results)
                if total:
                    progress(done / total, f"{done}/{total} images")
                else:
                    progress(0.0, f"{done} images")
        finally:
            halt.cancel()
            for future in pending:
                future.cancel()


def classify_paths(
    paths: Iterable[str | os.PathLike[str]],
    classifier: Classifier,
    *,
    top_k: int = 5,
    batch_size: int | None = None,
    workers: int | None = None,
    thumbnail_size: int | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    unknown: str = "auto",
    tta: bool = False,
) -> Iterator[ImageResult]:
    """Classify image files, yielding one :class:`ImageResult` per path, in order.

    Args:
        paths: Image files, read lazily (expand folders with ``walk_images``).
        classifier: A backend from ``open_classifier``.
        top_k: How many classes to report per image.
        batch_size: Images per inference call (default: :func:`suggested_batch_size`).
        workers: Batches processed at once (default: one per core).
        thumbnail_size: When set, each result carries a thumbnail this many pixels wide
            (made from the same decode).
        progress: Called with (fraction done, message) after each batch.
        cancel: Checked between images; raises :class:`Cancelled` when set.
        unknown: ``"auto"``: decide ``unknown`` with the model's detector when it has one
            (and the backend can run it); ``"off"``: never (``unknown`` stays None).
        tta: Average the probabilities over the test-time augmentation views
            (:mod:`cnn_desktop.core.inference.tta`); ``batch_size`` still counts images. The
            plain view alone decides ``unknown`` and gives ``plain_index``.
    """
    names = classifier.spec.class_names
    detector, _why_not = choose_detector(classifier, unknown)
    infer = classifier.predict if detector is None else scored_inference(classifier, detector)
    preprocess = preprocess_image
    if tta:
        infer, preprocess = averaged_then_plain(infer, len(names)), tta_views
    for raw in run_on_paths(
        paths,
        classifier.spec,
        infer,
        batch_size=batch_size or suggested_batch_size(classifier),
        workers=workers,
        thumbnail_size=thumbnail_size,
        progress=progress,
        cancel=cancel,
        preprocess=preprocess,
    ):
        if raw.output is None:
            yield ImageResult(path=raw.path, error=raw.error)
            continue
        probabilities, verdict, plain_index = raw.output, None, None
        if detector is not None:
            probabilities, verdict = (
                probabilities[:-1],
                bool(probabilities[-1] > detector.threshold),
            )
        if tta:  # the averaged views, then the plain view alone
            plain_index = int(np.argmax(probabilities[len(names) :]))
            probabilities = probabilities[: len(names)]
        top = top_predictions(probabilities, names, top_k)
        yield ImageResult(
            raw.path,
            top,
            thumbnail=raw.thumbnail,
            warnings=raw.warnings,
            unknown=verdict,
            plain_index=plain_index,
        )


def _infer_or_error(
    infer: Callable[[np.ndarray], np.ndarray], tensors: list[np.ndarray]
) -> tuple[np.ndarray, str | None]:
    """``infer`` on the stacked tensors, or the one-line reason it failed."""
    if not tensors:
        return np.empty((0, 0)), None
    try:
        outputs = np.asarray(infer(np.stack(tensors)))
    except Cancelled:
        raise
    except Exception as exc:  # ONNX Runtime and torch raise their own types, OOM included
        lines = str(exc).strip().splitlines()
        detail = lines[0][:300] if lines else type(exc).__name__
        return np.empty((0, 0)), f"inference failed: {detail}"
    if outputs.ndim < 1 or len(outputs) != len(tensors):
        rows = len(outputs) if outputs.ndim else 0
        return (
            outputs,
            f"inference failed: the model returned {rows} rows for {len(tensors)} images",
        )
    return outputs, None


def _decode_or_error(
    path: Path, spec: ModelSpec, thumbnail_size: int | None, preprocess: Preprocess
) -> _Decoded | str:
    try:
        return _decode(path, spec, thumbnail_size, preprocess)
    except ImageLoadError as exc:
        return str(exc)
    except (OSError, ValueError, MemoryError) as exc:
        return f"could not read image: {exc}"
