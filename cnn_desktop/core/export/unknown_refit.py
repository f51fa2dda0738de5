"""The unknown detector of an INT8 model, fitted again on the INT8 model's own outputs.

The float model's detector scales its two scores by their spread on the validation images,
and that spread is small, so INT8's shift of the scores moves images across the threshold:
on 600 handwritten digits (3 classes, head mode), the float detector on the INT8 model marks
3.0 % of the data set unknown, against 2.0 % for the float model, and fitted again on the
INT8 model 2.2 %. So an INT8 export reads the training run's split again and fits the
detector as training did (a bank of training embeddings, the threshold on the validation
split), on the INT8 graph. Where the training folder cannot be read any more, the INT8 model
gets no detector, and the report says why.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from cnn_desktop.core.export.images import ExportError, training_split
from cnn_desktop.core.imaging.loading import ImageLoadError
from cnn_desktop.core.imaging.preprocess import load_and_preprocess
from cnn_desktop.core.inference.backends.onnx import OnnxClassifier
from cnn_desktop.core.models.bundle import ModelBundle
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.models.unknown import UnknownDetector
from cnn_desktop.core.tasks import CancelToken, ProgressCallback
from cnn_desktop.core.training.unknown import BANK_LIMIT, bank_rows, fit_unknown_detector

_BATCH = 32


def refit_unknown_detector(
    source: ModelBundle,
    proto: onnx.ModelProto,
    spec: ModelSpec,
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> tuple[UnknownDetector | None, dict[str, Any]]:
    """The detector for the INT8 graph ``proto`` of ``source``, and its report block.

    Returns:
        ``(None, {"fitted": False, "reason": ...})`` when the float model has no detector or
        its training split cannot be rebuilt or has too few readable images; else the new
        detector and ``{"fitted": True, **its metrics}`` (as in ``metrics.json``).
    """
    if source.unknown is None:
        return None, {"fitted": False, "reason": f"{source.spec.name} has no unknown detector"}
    try:
        split, _, data = training_split(spec, cancel)
    except ExportError as exc:
        return None, {"fitted": False, "reason": f"it cannot be fitted again: {exc}"}
    seed = int(spec.provenance.get("seed", 0))
    labels = np.array([label for _, label in split.train])
    bank_items = [split.train[row] for row in bank_rows(labels, BANK_LIMIT, seed)]
    total = max(1, len(bank_items) + len(split.val))
    with tempfile.TemporaryDirectory(prefix="cnn-desktop-int8-") as folder:
        onnx_path = Path(folder) / "model.onnx"
        onnx.save(proto, str(onnx_path))
        int8 = dataclasses.replace(source, spec=spec, onnx_path=onnx_path, weights_path=None)
        classifier = OnnxClassifier(int8)
        _, train_embeddings, train_labels = _outputs(
            classifier, bank_items, 0, total, progress, cancel
        )
        val_probabilities, val_embeddings, _ = _outputs(
            classifier, split.val, len(bank_items), total, progress, cancel
        )
    detector, block = fit_unknown_detector(
        train_embeddings, train_labels, val_probabilities, val_embeddings, seed=seed
    )
    if detector is None:
        return None, {"fitted": False, "reason": f"in {data}, {block['reason']}"}
    return detector, {"fitted": True, **block}


def _outputs(
    classifier: OnnxClassifier,
    items: list[tuple[Path, int]],
    done: int,
    total: int,
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, embeddings and labels of the readable images among ``items``."""
    probabilities, embeddings, labels = [], [], []
    for start in range(0, len(items), _BATCH):
        if cancel is not None:
            cancel.raise_if_cancelled()
        progress((done + start) / total, "Fitting the unknown detector to the INT8 model…")
        tensors = []
        for path, label in items[start : start + _BATCH]:
            try:
                tensors.append(load_and_preprocess(path, classifier.spec))
            except ImageLoadError:
                continue
            labels.append(label)
        if tensors:
            batch_probabilities, batch_embeddings = classifier.predict_with_embeddings(
                np.stack(tensors)
            )
            probabilities.append(batch_probabilities)
            embeddings.append(batch_embeddings)
    if not probabilities:
        classes, width = len(classifier.spec.class_names), classifier.bundle.unknown.width
        return np.zeros((0, classes), np.float32), np.zeros((0, width), np.float32), np.zeros(0)
    return np.concatenate(probabilities), np.concatenate(embeddings), np.array(labels)
