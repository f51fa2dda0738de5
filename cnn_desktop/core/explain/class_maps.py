"""Mean evidence maps per class, in memory: for labelled images ``(path, class index)``, what
the model looks at as evidence for each class across that class's own images.

The maps are averaged on the model's crop exactly as ``explain --per-class`` averages them
(:func:`cnn_desktop.core.explain.to_files.add_maps` into a
:class:`cnn_desktop.core.explain.averaging.MeanMap`), but nothing is written: the Train tab shows
them as tiles. At most :data:`DEFAULT_PER_CLASS` images per class are used, evenly spread over
the class's list, so a large validation split takes seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from cnn_desktop.core.explain.averaging import MeanMap
from cnn_desktop.core.explain.explainer import AUTO, Explainer
from cnn_desktop.core.explain.to_files import add_maps
from cnn_desktop.core.inference.backends.base import Classifier
from cnn_desktop.core.tasks import CancelToken, ProgressCallback, no_progress

DEFAULT_PER_CLASS = 32
"""Images averaged per class at most."""
T = TypeVar("T")


@dataclass(frozen=True)
class ClassMap:
    """The mean map of one class.

    Attributes:
        name: The class's name in the model.
        class_index: Its output index (the class whose evidence is mapped).
        count: Images averaged (readable ones among those chosen).
        available: Images of the class offered, before the cap.
        heatmap: ``[height, width]`` float32 0..1 on the network input (its strongest
            pixel 1); all 0 when no image could be explained.
        mean_crop: The mean of the crops the network saw (RGB, the input size).
        peak: ``(x, y)`` of the strongest mean evidence, in network-input pixels.
        methods: The methods the maps were made with (``cam``, ``occlusion``, ``grad-cam``).
        failed: ``(path, reason)`` of each chosen image that could not be explained.
    """

    name: str
    class_index: int
    count: int
    available: int
    heatmap: np.ndarray
    mean_crop: Image.Image
    peak: tuple[int, int] = (0, 0)
    methods: tuple[str, ...] = ()
    failed: tuple[tuple[Path, str], ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Whether at least one image was averaged."""
        return self.count > 0


def evenly_spread(items: Sequence[T], limit: int) -> list[T]:
    """At most ``limit`` of ``items``, evenly spaced over the whole list, in order."""
    if limit <= 0:
        return []
    if len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def class_mean_maps(
    items: Iterable[tuple[str | os.PathLike[str], int]],
    explainer: Explainer,
    classifier: Classifier,
    *,
    per_class: int = DEFAULT_PER_CLASS,
    method: str = AUTO,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> Iterator[ClassMap]:
    """The mean map of each class among ``items``, one class at a time.

    Args:
        items: ``(image path, class index in the model)``; each image is explained for its
            own class.
        explainer: The model's explainer.
        classifier: The same model.
        per_class: Images averaged per class at most (evenly spread over the class's images).
        method: As for :meth:`Explainer.resolve_method` (``auto``: CAM on ONNX Runtime where
            the network ends in a global pool, occlusion otherwise, Grad-CAM on PyTorch).
        progress: ``progress(fraction, message)``.
        cancel: Checked after each image.

    Yields:
        One :class:`ClassMap` per class that has items, in class-index order; a class whose
        images all fail still comes, with ``count`` 0 and the reasons in ``failed``.

    Raises:
        ExplainError: ``method`` does not apply to the model (an unreadable image never
            raises: it is in ``failed``).
        Cancelled: ``cancel`` was cancelled.
    """
    chosen_method = explainer.resolve_method(method)
    names = explainer.spec.class_names
    by_class: dict[int, list[Path]] = {}
    for path, index in items:
        if not 0 <= index < len(names):
            raise ValueError(f"class index {index} is not one of the model's {len(names)}")
        by_class.setdefault(int(index), []).append(Path(path))
    chosen = {index: evenly_spread(paths, per_class) for index, paths in sorted(by_class.items())}
    total = max(1, sum(len(paths) for paths in chosen.values()))
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        progress(done / total, f"Class maps: {done} of {total} images")
        if cancel is not None:
            cancel.raise_if_cancelled()

    progress(0.0, f"Class maps: 0 of {total} images")
    for index, paths in chosen.items():
        mean = MeanMap(explainer.spec.input_size)
        methods: list[str] = []
        failures = add_maps(
            mean, paths, explainer, classifier, index, chosen_method, methods, advance=advance
        )
        failed = tuple((failure.path, failure.error or "") for failure in failures)
        yield ClassMap(
            name=names[index],
            class_index=index,
            count=mean.count,
            available=len(by_class[index]),
            heatmap=mean.mean_heatmap(),
            mean_crop=mean.mean_image(),
            peak=mean.peak() if mean.count else (0, 0),
            methods=tuple(methods),
            failed=failed,
        )
