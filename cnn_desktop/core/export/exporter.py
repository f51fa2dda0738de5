"""Exporting a model as a new bundle: a verified float copy, or an INT8 version with its parity
report.

Where the export goes follows ``train --out``: ``.cnnmodel`` is appended when missing, the
folder must exist and be writable, and anything at the path that is not a model bundle is
never touched. An existing bundle is replaced only when asked (``force``) and only by a
finished export, with the bundle module's atomic save: a failed or cancelled export writes
nothing.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from cnn_desktop.core.export.images import ExportError, ExportImages, export_images
from cnn_desktop.core.export.parity import QUANTIZATION_FILE, parity_report
from cnn_desktop.core.export.quantize import (
    ACCURACY_LADDER,
    Recipe,
    quantize_graph,
    surviving_layers,
)
from cnn_desktop.core.export.unknown_refit import refit_unknown_detector
from cnn_desktop.core.models.bundle import (
    BUNDLE_SUFFIX,
    BundleError,
    ModelBundle,
    save_bundle,
)
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.models.target import check_bundle_target
from cnn_desktop.core.tasks import CancelToken, ProgressCallback, no_progress

INT8_SUFFIX = " (INT8)"
ACCURACY_BUDGET_POINTS = 0.5
_COPIED_FILES = ("history.json", "metrics.json", QUANTIZATION_FILE)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes:
        bundle: The exported bundle, loaded back and validated.
        int8: Whether it is the INT8 version.
        report: The parity report against the float model (INT8 only), as also stored in the
            bundle's ``quantization.json``.
        replaced: Whether a bundle already at the output path was replaced.
    """

    bundle: ModelBundle
    int8: bool
    report: dict[str, Any] | None
    replaced: bool


def is_int8(spec: ModelSpec) -> bool:
    """Whether the spec describes a model this module quantized."""
    return spec.provenance.get("precision") == "int8"


def check_export_output(out: str | os.PathLike[str], source: ModelBundle, force: bool) -> Path:
    """Check, before any work, that the export can be written to ``out``.

    Returns:
        The bundle path (``.cnnmodel`` appended when missing).

    Raises:
        ExportError: ``out`` is a ``.onnx`` name, the model being exported, a folder that
            cannot be written, something other than a model bundle, or an existing bundle
            without ``force``.
    """
    if Path(out).suffix.lower() == ".onnx":
        raise ExportError(
            f"export writes a model bundle (NAME{BUNDLE_SUFFIX}), not '{Path(out).name}'; "
            "the bundle's model.onnx is the plain ONNX file"
        )
    try:
        path = check_bundle_target(out)
    except BundleError as exc:
        raise ExportError(str(exc)) from None
    if path.exists() and path.resolve() == Path(source.path).resolve():
        raise ExportError(f"{path} is the model being exported; choose another --out")
    if path.exists() and not force:
        raise ExportError(f"{path} exists; use --force to replace it (only a finished export does)")
    return path


def export_model(
    source: ModelBundle,
    out: str | os.PathLike[str],
    *,
    int8: bool = False,
    calibration: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ExportResult:
    """Export ``source`` as a new bundle at ``out``: a float copy, or the INT8 version.

    INT8: the graph is quantized on half of the calibration images (the folder
    ``calibration``, else the validation split the model was trained with) and compared with
    the float model on the other half; when they are labelled and INT8 loses more than
    :data:`ACCURACY_BUDGET_POINTS` of accuracy, the next recipe of the ladder is tried. The
    report (recipe kept, every attempt) goes into the bundle's ``quantization.json`` and the
    spec's provenance says ``"precision": "int8"``.

    Raises:
        ExportError: Bad output, no usable images, or a model that is already INT8.
        BundleError: The bundle could not be written.
        Cancelled: ``cancel`` was set; nothing was written.
    """
    target = check_export_output(out, source, force)
    replaced = target.exists()
    if not int8:
        if calibration is not None:
            raise ExportError("--calibration is only used by an INT8 export (--int8)")
        bundle = _copy(source, target)
        progress(1.0, f"Exported {bundle.path}")
        return ExportResult(bundle=bundle, int8=False, report=None, replaced=replaced)
    if is_int8(source.spec):
        raise ExportError(f"{source.name} is already an INT8 model")
    report, proto, spec = _quantize(source, calibration, progress, cancel)
    unknown, report["unknown_detector"] = refit_unknown_detector(
        source, proto, spec, _scaled(progress, 0.97, 0.99), cancel
    )
    progress(0.99, "Saving…")
    bundle = save_bundle(
        target, spec, proto, extra_json={QUANTIZATION_FILE: report}, unknown=unknown
    )
    progress(1.0, f"Exported {bundle.path}")
    return ExportResult(bundle=bundle, int8=True, report=report, replaced=replaced)


def _copy(source: ModelBundle, target: Path) -> ModelBundle:
    """The source re-saved at ``target``: graph, spec, weights, unknown detector and its
    JSON files."""
    proto = onnx.load(str(source.onnx_path))
    weights = None
    if source.weights_path is not None:
        from safetensors.numpy import load_file

        try:
            weights = load_file(str(source.weights_path))
        except Exception as exc:  # safetensors raises its own error type
            raise BundleError(f"{source.weights_path} cannot be read: {exc}") from None
    extra = {name: data for name in _COPIED_FILES if (data := source.read_json(name)) is not None}
    return save_bundle(
        target, source.spec, proto, weights=weights, extra_json=extra, unknown=source.unknown
    )


def _scaled(progress: ProgressCallback, low: float, high: float) -> ProgressCallback:
    return lambda fraction, message: progress(low + (high - low) * fraction, message)


def _quantize(
    source: ModelBundle,
    calibration: str | os.PathLike[str] | None,
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> tuple[dict[str, Any], onnx.ModelProto, ModelSpec]:
    spec = source.spec
    images = export_images(spec, calibration, progress=_scaled(progress, 0.0, 0.15), cancel=cancel)
    proto, report, budget = _within_budget(source, images, progress, cancel)
    settings = report.pop("recipe").settings()
    report = {
        "source": images.source,
        "calibration_images": len(images.calibration),
        "skipped_images": images.skipped,
        **report,
        "float_model": str(source.path),
        "quantization": settings,
        "accuracy_budget": budget,
    }
    layers = surviving_layers(spec.layers, onnx.load(str(source.onnx_path)).graph, proto.graph)
    name = spec.name if spec.name.endswith(INT8_SUFFIX) else spec.name + INT8_SUFFIX
    provenance = {
        **spec.provenance,
        "precision": "int8",
        "quantized_from": spec.name,
        "quantization": settings,
    }
    int8_spec = dataclasses.replace(spec, name=name[:200], layers=layers, provenance=provenance)
    return report, proto, int8_spec


def _within_budget(
    source: ModelBundle,
    images: ExportImages,
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> tuple[onnx.ModelProto, dict[str, Any], dict[str, Any]]:
    """The fastest recipe of the ladder that loses at most the accuracy budget.

    Each recipe is quantized and measured on the held-out images in turn; the first within
    :data:`ACCURACY_BUDGET_POINTS` is kept. Without labels the accuracy cannot be checked and
    the first (fastest) recipe is kept; when none is within budget, the one that lost least.

    Returns:
        The chosen graph, its parity report (with its ``recipe``), and the budget's record:
        ``points``, ``checked``, ``met``, and each ``attempt`` (recipe, accuracy change,
        agreement, speed-up).
    """
    spec, share = source.spec, 0.82 / len(ACCURACY_LADDER)
    tried: list[tuple[onnx.ModelProto, dict[str, Any]]] = []
    for step, recipe in enumerate(ACCURACY_LADDER):
        start = 0.15 + share * step
        proto = quantize_graph(
            source.onnx_path,
            images.calibration,
            spec.input_name,
            recipe,
            progress=_scaled(progress, start, start + 0.6 * share),
            cancel=cancel,
        )
        report = parity_report(
            str(source.onnx_path),
            proto.SerializeToString(),
            spec,
            images.held_out,
            images.held_out_labels,
            fixed_batch=source.batch_size,
            progress=_scaled(progress, start + 0.6 * share, start + share),
            cancel=cancel,
        )
        tried.append((proto, {**report, "recipe": recipe}))
        change = report["accuracy_change_points"]
        if change is None or change >= -ACCURACY_BUDGET_POINTS:
            break
        if step + 1 < len(ACCURACY_LADDER):
            next_name = ACCURACY_LADDER[step + 1].name
            progress(start + share, f"INT8 lost {-change:.1f} points; trying {next_name}…")
    proto, report = max(tried, key=lambda item: item[1]["accuracy_change_points"] or 0.0)
    checked = report["accuracy_change_points"] is not None
    budget = {
        "points": ACCURACY_BUDGET_POINTS,
        "checked": checked,
        "met": checked and report["accuracy_change_points"] >= -ACCURACY_BUDGET_POINTS,
        "attempts": [_attempt(found) for _, found in tried],
    }
    return proto, report, budget


def _attempt(report: dict[str, Any]) -> dict[str, Any]:
    recipe: Recipe = report["recipe"]
    return {
        "recipe": recipe.name,
        "accuracy_change_points": report["accuracy_change_points"],
        "top1_agreement": report["top1_agreement"],
        "int8_speedup": report["speed"]["int8_speedup"],
    }
