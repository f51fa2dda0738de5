"""The end of a training run: save the bundle, verify its ONNX graph against the trained model
on validation images, evaluate, and record it all in ``metrics.json``. Torch-free: the trained
model is seen only through a ``reference`` function (torch for full and scratch runs, the
numpy head on ONNX Runtime embeddings for head runs).

The run's bundle is saved and checked in a private folder beside the output path, then that
very folder is moved into place (atomically, under the bundle module's lock). A model already
at the output path is replaced only by a finished run whose check passed (see
:mod:`cnn_desktop.core.training.placement`); a failed save (a full disk) leaves it as it was."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from cnn_desktop.core.imaging.files import atomic_write
from cnn_desktop.core.imaging.loading import ImageLoadError
from cnn_desktop.core.imaging.preprocess import load_and_preprocess
from cnn_desktop.core.inference.backends.onnx import OnnxClassifier
from cnn_desktop.core.models.bundle import (
    BundleError,
    ModelBundle,
    place_bundle,
    save_bundle,
    save_failure_message,
)
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.models.unknown import UnknownDetector
from cnn_desktop.core.training.calibration import calibration_summary, logits_from_probabilities
from cnn_desktop.core.training.config import TrainConfig, TrainEvent, TrainResult
from cnn_desktop.core.training.dataset import ScanReport
from cnn_desktop.core.training.evaluate import Evaluation, evaluate_items
from cnn_desktop.core.training.placement import kept_bundle_path
from cnn_desktop.core.training.splits import Split

PARITY_TOLERANCE = 1e-4
PARITY_MAX_IMAGES = 256
# Head mode: the frozen backbone is the built-in model, so a class-stratified sample of the
# validation images is enough to catch a wrong head export, and keeps a warm run in seconds.
HEAD_PARITY_MAX_IMAGES = 24


def stratified_sample(items: Sequence[tuple[Path, int]], limit: int) -> list[tuple[Path, int]]:
    """Up to ``limit`` items taking classes in turn (deterministic)."""
    by_class: dict[int, list[tuple[Path, int]]] = {}
    for item in items:
        by_class.setdefault(item[1], []).append(item)
    queues = [list(group) for _, group in sorted(by_class.items())]
    chosen: list[tuple[Path, int]] = []
    while len(chosen) < limit and any(queues):
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return chosen


Reference = Callable[[np.ndarray], np.ndarray]
"""The trained model: class probabilities ``[N, classes]`` for a preprocessed batch."""


def export_check(
    reference: Reference,
    classifier: OnnxClassifier,
    items: Sequence[tuple[Path, int]],
    max_images: int = PARITY_MAX_IMAGES,
) -> dict[str, Any]:
    """Compare the saved ONNX graph with the trained model on real images.

    Returns:
        ``images``, ``top1_agreement`` (fraction), ``max_abs_difference`` and ``passed``
        (100 % top-1 agreement and probabilities within 1e-4).
    """
    tensors = []
    for path, _ in stratified_sample(items, max_images):
        try:
            tensors.append(load_and_preprocess(path, classifier.spec))
        except ImageLoadError:
            continue
    if not tensors:
        return {"images": 0, "top1_agreement": None, "max_abs_difference": None, "passed": False}
    agree, worst = 0, 0.0
    for start in range(0, len(tensors), 32):
        batch = np.stack(tensors[start : start + 32])
        onnx_probs = classifier.predict(batch)
        trained_probs = np.asarray(reference(batch), np.float32)
        agree += int((onnx_probs.argmax(1) == trained_probs.argmax(1)).sum())
        worst = max(worst, float(np.abs(onnx_probs - trained_probs).max()))
    agreement = agree / len(tensors)
    return {
        "images": len(tensors),
        "top1_agreement": agreement,
        "max_abs_difference": worst,
        "tolerance": PARITY_TOLERANCE,
        "passed": agreement == 1.0 and worst <= PARITY_TOLERANCE,
        "of_validation_images": len(items),
    }


def held_out_calibration(
    classifier: OnnxClassifier, items: Sequence[tuple[Path, int]], temperature: float
) -> dict[str, Any]:
    """ECE and reliability bins on held-out images, of the saved (calibrated) graph's output
    and of the uncalibrated output it implies (``T · log p`` as logits)."""
    probabilities, labels = [], []
    for start in range(0, len(items), 32):
        tensors, batch_labels = [], []
        for path, label in items[start : start + 32]:
            try:
                tensors.append(load_and_preprocess(path, classifier.spec))
            except ImageLoadError:
                continue
            batch_labels.append(label)
        if tensors:
            probabilities.append(classifier.predict(np.stack(tensors)))
            labels += batch_labels
    if not probabilities:
        return calibration_summary(np.zeros((0, classifier.spec.num_classes)), [], temperature)
    logits = logits_from_probabilities(np.concatenate(probabilities), temperature)
    return calibration_summary(logits, np.asarray(labels), temperature)


def _write_json_atomically(path: Path, content: Any) -> None:
    with atomic_write(path, "w", encoding="utf-8") as out:
        json.dump(content, out, indent=2, ensure_ascii=False)


@contextmanager
def _save_errors(target: Path, previous: Path | None) -> Iterator[None]:
    """Failures to write the model for ``target`` (in the working folder too) as one
    :class:`BundleError` that names ``target`` and the ``previous`` model left unchanged."""
    try:
        yield
    except (BundleError, OSError) as exc:
        error = exc.__cause__ if isinstance(exc, BundleError) and exc.__cause__ else exc
        raise BundleError(save_failure_message(target, error, previous)) from exc


def finish(
    reference: Reference,
    spec: ModelSpec,
    proto: onnx.ModelProto,
    weights: Mapping[str, np.ndarray],
    report: ScanReport,
    split: Split,
    out: Path,
    config: TrainConfig,
    history: list[dict[str, float]],
    *,
    cancelled: bool,
    training: dict[str, Any],
    evaluation: Evaluation | None = None,
    calibration: dict[str, Any] | None = None,
    unknown: tuple[UnknownDetector | None, dict[str, Any]] | None = None,
    checked_against: str = "PyTorch",
    world_size: int = 1,
) -> Iterator[TrainEvent]:
    """Save the bundle (``proto`` and ``weights``), verify the graph against ``reference`` and
    evaluate it; ends with a ``done`` or ``cancelled`` event whose result says where the model
    went.

    ``out`` is the bundle path asked for. The model is saved and checked in a working folder
    beside it, then moved there; when a model is already at ``out`` it is replaced only if
    the run was not cancelled and the check passed (else the new one keeps a name of its own
    beside ``out``).

    ``calibration`` is the temperature block fitted on the validation split (``reference``
    and the graph are both calibrated by it); with a test split, its ``test`` summary is
    measured here on the saved graph.

    ``unknown`` is the unknown detector fitted on the training and validation outputs and
    its ``metrics.json`` block; it is saved with the model (when fitted), and with a test
    split the block gains the share of test images it marks unknown.

    ``world_size`` is how many processes trained the model together (``torchrun``; 1 for an
    ordinary run), recorded as ``metrics.json``'s ``world_size``.

    Raises:
        BundleError: The model could not be written (``no space left on device while saving
            …``); a model that was at ``out`` is unchanged and no working folder is left.
    """
    metrics: dict[str, Any] = {"training": training, "world_size": world_size}
    if calibration is not None:
        metrics["calibration"] = dict(calibration)
    detector = unknown[0] if unknown is not None else None
    if unknown is not None:
        metrics["unknown"] = dict(unknown[1])

    def save(path: Path) -> ModelBundle:
        extra = {"history.json": history, "metrics.json": metrics}
        return save_bundle(path, spec, proto, weights=weights, extra_json=extra, unknown=detector)

    def verify(bundle: ModelBundle) -> None:
        classifier = OnnxClassifier(bundle, "cpu")
        limit = HEAD_PARITY_MAX_IMAGES if config.mode == "head" else PARITY_MAX_IMAGES
        metrics["export_check"] = export_check(
            reference, classifier, split.val or split.train, limit
        )
        found = evaluation
        if (split.test or split.val) and found is None:
            found = evaluate_items(classifier, split.test or split.val, report.classes)
        if found is not None:
            metrics["evaluation"] = found.to_dict()
            metrics["evaluation_set"] = "test" if split.test else "validation"
        if split.test and found is not None and found.unknown is not None:
            metrics["unknown"]["test"] = found.unknown
        if calibration is not None and split.test:
            metrics["calibration"]["test"] = held_out_calibration(
                classifier, split.test, calibration["temperature"]
            )

    check_message = f"Checking the ONNX export against {checked_against}…"
    kept_because, label = "", ""
    previous = out if out.exists() or out.is_symlink() else None
    with tempfile.TemporaryDirectory(
        prefix=f".{out.name}.checking-", dir=out.parent, ignore_cleanup_errors=True
    ) as working:
        with _save_errors(out, previous):
            trial = save(Path(working) / out.name)
        yield TrainEvent("export", message=check_message, fraction=0.5)
        verify(trial)
        if previous is not None and cancelled:
            kept_because, label = "the run was cancelled (it holds its best epoch)", "cancelled"
        elif previous is not None and not metrics["export_check"]["passed"]:
            kept_because, label = "its ONNX export check failed", "unverified"
        final = kept_bundle_path(out, label) if kept_because else out
        with _save_errors(final, previous):  # the checked folder itself goes in place
            _write_json_atomically(trial.path / "metrics.json", metrics)
            bundle = place_bundle(trial.path, final)
    replaced = previous is not None and not kept_because
    result = TrainResult(
        bundle=bundle,
        history=history,
        metrics=metrics,
        cancelled=cancelled,
        target=out,
        replaced=replaced,
        kept_because=kept_because,
    )
    check = metrics["export_check"]
    verdict = (
        f"ONNX export verified on {check['images']} images "
        f"(top-1 agreement {check['top1_agreement']:.0%}, max difference "
        f"{check['max_abs_difference']:.1e})"
        if check["images"]
        else "ONNX export not verified (no readable validation images)"
    )
    yield TrainEvent(
        "cancelled" if cancelled else "done",
        message=f"{verdict}. {result.placement()}.",
        fraction=1.0,
        result=result,
        data={"export_check": check},
    )
