"""The images an INT8 export calibrates on and checks itself with.

Either the folder the user gives (walked like ``classify`` walks one; labelled when it holds
class folders named like the model's classes) or, for a model trained with cnn-desktop, its
validation split, rebuilt from the training folder, seed and validation share its provenance
records. Either way the images are dealt alternately into a calibration half and a held-out
half, so the parity report is never measured on the images the quantizer has seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn_desktop.core.imaging.loading import ImageLoadError, collect_image_paths
from cnn_desktop.core.imaging.preprocess import load_and_preprocess
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.tasks import CancelToken, ProgressCallback, no_progress
from cnn_desktop.core.training.dataset import DatasetError, scan_folder
from cnn_desktop.core.training.splits import Split, make_split

MAX_CALIBRATION_IMAGES = 128
MAX_HELD_OUT_IMAGES = 400
MIN_IMAGES = 2  # one to calibrate on, one to check with
DEFAULT_VAL_SPLIT = 0.2  # what `train` uses when the provenance predates recording it


class ExportError(ValueError):
    """An export cannot be made (bad model, output or images); the message says why."""


@dataclass
class ExportImages:
    """Preprocessed images for one export.

    Attributes:
        source: Where they came from, for the report (``validation split of DATA`` or a folder).
        calibration: ``[N, C, H, W]`` float32, what the quantizer calibrates on.
        held_out: ``[M, C, H, W]`` float32, what the parity report is measured on.
        held_out_labels: The model's class index of each held-out image, or None when unknown.
        skipped: Images that could not be used (unreadable, or not images).
    """

    source: str
    calibration: np.ndarray
    held_out: np.ndarray
    held_out_labels: np.ndarray | None
    skipped: int = 0


def export_images(
    spec: ModelSpec,
    calibration_dir: str | Path | None,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ExportImages:
    """The calibration and held-out images for quantizing a model with ``spec``.

    Raises:
        ExportError: No folder was given and the model records no training data (the built-in
            model), the folder is missing or has fewer than two readable images.
    """
    if calibration_dir is not None:
        folder = Path(calibration_dir)
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is not a folder"
            raise ExportError(f"calibration folder {folder} {what}")
        items, skipped, labelled = _folder_items(folder, spec, cancel)
        source = f"images in {folder}"
    else:
        items, skipped, source = _validation_items(spec, cancel)
        labelled = True
    return _load(items, spec, labelled, source, skipped, progress, cancel)


def _folder_items(
    folder: Path, spec: ModelSpec, cancel: CancelToken | None
) -> tuple[list[tuple[Path, int]], int, bool]:
    """Images of a user's folder, labelled (``(path, class index)``, True) when they all sit
    in class folders named like model classes; else ``(path, -1)`` and False."""
    listing = collect_image_paths([folder])
    unusable = len(listing.problems) + len(listing.skipped)
    try:
        report = scan_folder(folder, check_images=False, for_training=False, cancel=cancel)
    except DatasetError:
        report = None
    loose = any(path.parent == folder for path in listing.paths)
    if report is None or loose or not set(report.classes) <= set(spec.class_names):
        return [(path, -1) for path in listing.paths], unusable, False
    index = {name: i for i, name in enumerate(spec.class_names)}
    items = [
        (path, index[report.classes[label]])
        for split in report.items.values()
        for path, label in split
    ]
    return sorted(items, key=lambda item: (item[1], str(item[0]))), len(report.skipped), True


def _validation_items(
    spec: ModelSpec, cancel: CancelToken | None
) -> tuple[list[tuple[Path, int]], int, str]:
    """The validation split of the model's training run, rebuilt from its provenance."""
    split, skipped, data = training_split(spec, cancel)
    held = split.test or split.val
    which = "test" if split.test else "validation"
    return held, skipped, f"the {which} split of {data}"


def training_split(spec: ModelSpec, cancel: CancelToken | None = None) -> tuple[Split, int, str]:
    """The training run's split, rebuilt from the training folder, seed and validation share
    the provenance records, with class indices of the model; also the number of skipped files
    and the folder.

    Raises:
        ExportError: The model was not trained with cnn-desktop, or its training folder
            cannot be read again.
    """
    provenance = spec.provenance
    data = provenance.get("data")
    if not isinstance(data, str) or provenance.get("source") != "trained with cnn-desktop":
        raise ExportError(
            f"{spec.name} has no validation images to calibrate on (it was not trained with "
            "cnn-desktop); give a folder of typical images to calibrate on (--calibration DIR)"
        )
    try:
        report = scan_folder(data, cancel=cancel)
    except DatasetError as exc:
        raise ExportError(
            f"the model's training folder cannot be read again ({exc}); "
            "give a folder of typical images to calibrate on (--calibration DIR)"
        ) from None
    val_split = provenance.get("val_split", DEFAULT_VAL_SPLIT)
    split = make_split(report, float(val_split), int(provenance.get("seed", 0)))
    index = {name: i for i, name in enumerate(spec.class_names)}

    def indexed(items: list[tuple[Path, int]]) -> list[tuple[Path, int]]:
        return [(path, index.get(report.classes[label], -1)) for path, label in items]

    rebuilt = Split(train=indexed(split.train), val=indexed(split.val), test=indexed(split.test))
    return rebuilt, len(report.skipped), data


def _spread(items: Sequence[tuple[Path, int]], limit: int) -> list[tuple[Path, int]]:
    """At most ``limit`` items, evenly spaced over the whole list (which is sorted by class)."""
    if len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def _load(
    items: list[tuple[Path, int]],
    spec: ModelSpec,
    labelled: bool,
    source: str,
    skipped: int,
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> ExportImages:
    calibration = _spread(items[0::2], MAX_CALIBRATION_IMAGES)
    held_out = _spread(items[1::2], MAX_HELD_OUT_IMAGES)
    loaded: list[list[tuple[np.ndarray, int]]] = [[], []]
    total = len(calibration) + len(held_out)
    for number, (half, (path, label)) in enumerate(
        [(0, item) for item in calibration] + [(1, item) for item in held_out]
    ):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if number % 16 == 0:
            progress(number / total, f"Reading images ({number}/{total})…")
        try:
            loaded[half].append((load_and_preprocess(path, spec), label))
        except ImageLoadError:
            skipped += 1
    readable = len(loaded[0]) + len(loaded[1])
    if readable < MIN_IMAGES:
        raise ExportError(
            f"{source} has {readable} readable image{'' if readable == 1 else 's'}; INT8 export "
            f"needs at least {MIN_IMAGES} (a few hundred typical images are best)"
        )
    if not loaded[1] or not loaded[0]:  # the unreadable ones all fell in one half
        full, empty = (loaded[0], loaded[1]) if loaded[0] else (loaded[1], loaded[0])
        empty.append(full.pop())
    known = labelled and all(label >= 0 for _, label in loaded[1])
    return ExportImages(
        source=source,
        calibration=np.stack([tensor for tensor, _ in loaded[0]]),
        held_out=np.stack([tensor for tensor, _ in loaded[1]]),
        held_out_labels=np.array([label for _, label in loaded[1]]) if known else None,
        skipped=skipped,
    )
