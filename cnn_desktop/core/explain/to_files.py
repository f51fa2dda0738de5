"""Explanations written as files: a heatmap and an overlay per image, mean maps per class.

:func:`explain_image` maps the evidence for one class back onto the image as the user has it
(:mod:`cnn_desktop.core.explain.geometry`) and writes ``NAME.heatmap.png`` (8-bit grey, the
image's own size, 0 where the model saw nothing) and ``NAME.overlay.jpg``;
:func:`explain_class` averages the maps of one class folder on the model's crop
(:class:`cnn_desktop.core.explain.averaging.MeanMap`). The files are written by
:class:`cnn_desktop.core.explain.writer.ExplanationWriter`: never over an existing file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnn_desktop.core.explain.averaging import MeanMap
from cnn_desktop.core.explain.cam import CamResult
from cnn_desktop.core.explain.explainer import AUTO, Explainer
from cnn_desktop.core.explain.feature_maps import ExplainError
from cnn_desktop.core.explain.geometry import map_to_input, peak_in_input, seen_pixels
from cnn_desktop.core.explain.writer import ExplanationWriter
from cnn_desktop.core.imaging.decode_warnings import decode_warnings
from cnn_desktop.core.imaging.loading import ImageLoadError, load_image
from cnn_desktop.core.imaging.preprocess import fit_image, to_tensor
from cnn_desktop.core.inference.backends.base import Classifier

IMAGE_SUFFIXES = (".heatmap.png", ".overlay.jpg")
CLASS_SUFFIXES = (".mean-heatmap.png", ".mean-overlay.jpg")


@dataclass(frozen=True)
class ExplainedImage:
    """One image's explanation, or why there is none.

    Attributes:
        path: The image file.
        label: The class explained.
        class_index: Its index in the model's outputs.
        confidence: The model's probability for that class on this image.
        method: ``"cam"``, ``"grad-cam"`` or ``"occlusion"``.
        peak: ``(x, y)`` of the strongest evidence, in the image's own pixels.
        heatmap: The heatmap file written.
        overlay: The overlay file written.
        warnings: The decoder's warnings about a damaged but readable file.
        error: Why the image could not be explained (the other fields are then empty).
    """

    path: Path
    label: str = ""
    class_index: int = -1
    confidence: float = 0.0
    method: str = ""
    peak: tuple[int, int] = (0, 0)
    heatmap: Path | None = None
    overlay: Path | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the files were written."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """``{"path", "label", "class_index", "confidence", "method", "peak", "heatmap",
        "overlay"}`` (plus ``"warnings"`` if any), or ``{"path", "error"}``."""
        if self.error is not None:
            return {"path": str(self.path), "error": self.error}
        data: dict[str, Any] = {
            "path": str(self.path),
            "label": self.label,
            "class_index": self.class_index,
            "confidence": round(self.confidence, 6),
            "method": self.method,
            "peak": list(self.peak),
            "heatmap": str(self.heatmap),
            "overlay": str(self.overlay),
        }
        if self.warnings:
            data["warnings"] = list(self.warnings)
        return data


@dataclass(frozen=True)
class ExplainedClass:
    """The mean explanation of one class folder.

    Attributes:
        name: The class folder's name.
        count: Images averaged.
        peak: ``(x, y)`` of the strongest mean evidence, in network-input pixels.
        heatmap: The mean heatmap file (the network input's size).
        overlay: The mean heatmap over the mean crop.
        methods: The methods the maps were made with.
        error: Why nothing was written (no readable image).
    """

    name: str
    count: int = 0
    peak: tuple[int, int] = (0, 0)
    heatmap: Path | None = None
    overlay: Path | None = None
    methods: tuple[str, ...] = field(default_factory=tuple)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"class", "count", "method", "peak", "heatmap", "overlay"}``, or
        ``{"class", "count", "error"}``."""
        if self.error is not None:
            return {"class": self.name, "count": self.count, "error": self.error}
        return {
            "class": self.name,
            "count": self.count,
            "method": ",".join(self.methods),
            "peak": list(self.peak),
            "heatmap": str(self.heatmap),
            "overlay": str(self.overlay),
        }


def class_index_for(class_names: Iterable[str], label: str) -> int:
    """The output index of the class called ``label``.

    Raises:
        ExplainError: The model has no such class.
    """
    names = list(class_names)
    if label in names:
        return names.index(label)
    folded = [n for n, name in enumerate(names) if name.casefold() == label.casefold()]
    if len(folded) == 1:
        return folded[0]
    shown = ", ".join(names[:10]) + (f", … ({len(names)} in all)" if len(names) > 10 else "")
    raise ExplainError(f"the model has no class '{label}' (its classes: {shown})")


def _explain_loaded(
    image: Image.Image,
    explainer: Explainer,
    classifier: Classifier,
    class_index: int | None,
    method: str,
) -> tuple[CamResult, Image.Image, float]:
    """The map for one loaded image (of the top class when ``class_index`` is None), the crop
    the network saw, and the model's probability for the class explained."""
    spec = explainer.spec
    crop = fit_image(image, spec)
    tensor = to_tensor(crop, spec)
    probabilities = classifier.predict(tensor[None])[0]
    target = int(np.argmax(probabilities)) if class_index is None else class_index
    result = explainer.explain(tensor, target, method)
    return result, crop, float(probabilities[target])


def explain_image(
    path: str | os.PathLike[str],
    explainer: Explainer,
    classifier: Classifier,
    writer: ExplanationWriter,
    *,
    class_index: int | None = None,
    method: str = AUTO,
) -> ExplainedImage:
    """Explain one image file and write its heatmap and overlay.

    Args:
        path: The image.
        explainer: The model's explainer.
        classifier: The same model, for the prediction and the probability.
        writer: Where the files go.
        class_index: The class to explain; None for the model's top class for this image.
        method: ``auto``, ``cam``, ``grad-cam`` or ``occlusion``
            (:meth:`Explainer.resolve_method`).

    Returns:
        The explanation, or an :class:`ExplainedImage` with ``error`` set for an image that
        cannot be read, explained or written (it never raises for those).
    """
    path, spec = Path(path), explainer.spec
    try:
        image = load_image(path)
        result, _, confidence = _explain_loaded(image, explainer, classifier, class_index, method)
        mapped = map_to_input(result.heatmap, spec, image.size)
        seen = seen_pixels(spec, image.size)
        heat_path, overlay_path = writer.write(path.stem, mapped, image, IMAGE_SUFFIXES, seen)
    except (ImageLoadError, ExplainError) as exc:
        return ExplainedImage(path=path, error=str(exc))
    except OSError as exc:
        return ExplainedImage(path=path, error=f"cannot write the explanation: {exc}")
    return ExplainedImage(
        path=path,
        label=spec.class_names[result.class_index],
        class_index=result.class_index,
        confidence=confidence,
        method=result.method,
        peak=peak_in_input(result.heatmap, spec, image.size),
        heatmap=heat_path,
        overlay=overlay_path,
        warnings=decode_warnings(image),
    )


def add_maps(
    mean: MeanMap,
    paths: Iterable[str | os.PathLike[str]],
    explainer: Explainer,
    classifier: Classifier,
    class_index: int | None,
    method: str,
    methods: list[str],
    *,
    advance: Callable[[], None] | None = None,
) -> Iterator[ExplainedImage]:
    """Add the map of each image of ``paths`` to ``mean`` (the one loop every per-class mean
    is made by: ``explain --per-class`` and the Train tab's class maps).

    Args:
        mean: The running mean the maps and crops are added to.
        paths: The images.
        explainer: The model's explainer.
        classifier: The same model.
        class_index: The class whose evidence is mapped; None for each image's top class.
        method: As for :func:`explain_image`.
        methods: The methods used are appended to it (each once).
        advance: Called after each image, added or not (progress; it may raise Cancelled).

    Yields:
        An :class:`ExplainedImage` with ``error`` set for each image left out.
    """
    for path in paths:
        try:
            image = load_image(path)
            result, crop, _ = _explain_loaded(image, explainer, classifier, class_index, method)
        except (ImageLoadError, ExplainError) as exc:
            yield ExplainedImage(path=Path(path), error=str(exc))
            continue
        finally:
            if advance is not None:
                advance()
        mean.add(result.heatmap, crop)
        if result.method not in methods:
            methods.append(result.method)


def explain_class(
    name: str,
    paths: Iterable[str | os.PathLike[str]],
    explainer: Explainer,
    classifier: Classifier,
    writer: ExplanationWriter,
    *,
    class_index: int | None = None,
    method: str = AUTO,
    advance: Callable[[], None] | None = None,
) -> Iterator[ExplainedImage | ExplainedClass]:
    """Average the maps of one class's images on the model's crop and write the mean.

    Args:
        name: The class (the folder's name); the files are ``NAME.mean-heatmap.png`` (the
            network input's size) and ``NAME.mean-overlay.jpg`` (over the mean crop).
        paths: The class's images.
        explainer: The model's explainer.
        classifier: The same model.
        writer: Where the files go.
        class_index: The class whose evidence is averaged; None for each image's top class.
        method: As for :func:`explain_image`.
        advance: Called after each image (progress).

    Yields:
        An :class:`ExplainedImage` with ``error`` set for each image left out, then one
        :class:`ExplainedClass`.
    """
    mean = MeanMap(explainer.spec.input_size)
    methods: list[str] = []
    yield from add_maps(
        mean, paths, explainer, classifier, class_index, method, methods, advance=advance
    )
    if mean.count == 0:
        yield ExplainedClass(name=name, error="no image of this class could be explained")
        return
    try:
        heat_path, overlay_path = writer.write(
            name, mean.mean_heatmap(), mean.mean_image(), CLASS_SUFFIXES
        )
    except OSError as exc:
        yield ExplainedClass(name=name, count=mean.count, error=f"cannot write: {exc}")
        return
    yield ExplainedClass(
        name=name,
        count=mean.count,
        peak=mean.peak(),
        heatmap=heat_path,
        overlay=overlay_path,
        methods=tuple(methods),
    )
