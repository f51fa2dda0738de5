"""How well a model does on labelled images: accuracy, per-class precision/recall/F1, the
confusion matrix, and the mistakes worth looking at (most confident first).

Class names, not indices, connect a folder to a model: a folder ``cat/`` is scored against the
model's class ``cat`` wherever it sits in the model's output, and a folder the model has no
class for is reported as an error rather than silently scored as wrong.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnn_desktop.core.inference.backends.base import Classifier
from cnn_desktop.core.inference.predict import classify_paths
from cnn_desktop.core.tasks import CancelToken, ProgressCallback, no_progress
from cnn_desktop.core.training.dataset import SPLIT_FOLDER_NAMES, DatasetError, scan_folder
from cnn_desktop.core.training.evaluate_summaries import (
    tta_line,
    tta_summary,
    unknown_line,
    unknown_summary,
)

MAX_MATRIX_CLASSES = 30  # wider confusion matrices are left out of the text report
_LISTED = 10  # errors and mistakes listed by name in the text report
_DECIMALS = 6


@dataclass
class Evaluation:
    """The result of scoring a model on labelled images.

    Attributes:
        classes: Class names, in the model's order; rows and columns of the matrix.
        accuracy: Share of evaluated images whose top prediction is the true class (0 if none).
        per_class: Class name → ``{"precision", "recall", "f1", "support"}``.
        confusion_matrix: ``[true][predicted]`` image counts.
        misclassified: ``{"path", "true", "predicted", "confidence"}`` per wrong prediction,
            most confident first.
        errors: ``{"path", "error"}`` per image that could not be evaluated.
        unknown: ``{"images", "rate", "accuracy_of_known"}``: how many evaluated images the
            model's unknown detector marked unknown, their share, and the accuracy of the
            others; None when it decided nothing (no detector, or it was off).
        tta: With test-time augmentation (the figures above are then with it): its views,
            ``accuracy``, ``accuracy_without_tta`` on the same images, and how many
            predictions it ``fixed`` (wrong → right) and ``broke`` (right → wrong).
    """

    classes: list[str]
    accuracy: float
    per_class: dict[str, dict[str, Any]]
    confusion_matrix: list[list[int]]
    misclassified: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    unknown: dict[str, Any] | None = None
    tta: dict[str, Any] | None = None

    @property
    def count(self) -> int:
        """Images that were evaluated (errors excluded)."""
        return sum(sum(row) for row in self.confusion_matrix)

    def to_dict(self) -> dict[str, Any]:
        """The JSON printed by ``cnn-desktop evaluate --format json``."""
        return {
            "accuracy": round(self.accuracy, _DECIMALS),
            "classes": list(self.classes),
            "per_class": {
                name: {
                    "precision": round(metrics["precision"], _DECIMALS),
                    "recall": round(metrics["recall"], _DECIMALS),
                    "f1": round(metrics["f1"], _DECIMALS),
                    "support": int(metrics["support"]),
                }
                for name, metrics in self.per_class.items()
            },
            "confusion_matrix": [list(row) for row in self.confusion_matrix],
            "errors": [dict(error) for error in self.errors],
            "unknown": dict(self.unknown) if self.unknown is not None else None,
            "misclassified": [
                {**item, "confidence": round(item["confidence"], _DECIMALS)}
                for item in self.misclassified
            ],
            **({"tta": dict(self.tta)} if self.tta is not None else {}),
        }

    def table(self) -> str:
        """A text report: accuracy, per-class table, confusion matrix, errors and mistakes."""
        if self.count == 0:
            lines = ["No images could be evaluated."]
        else:
            correct = sum(self.confusion_matrix[i][i] for i in range(len(self.classes)))
            lines = [f"Accuracy: {self.accuracy:.2%} ({correct} of {self.count} images)", ""]
            if self.unknown is not None:
                lines[-1:-1] = [unknown_line(self.unknown, self.count)]
            if self.tta is not None:
                lines[-1:] = [tta_line(self.tta), ""]
            lines += _per_class_lines(self.classes, self.per_class)
            lines.append("")
            if len(self.classes) <= MAX_MATRIX_CLASSES:
                lines.append("Confusion matrix (rows: true class, columns: predicted class)")
                lines += _matrix_lines(self.classes, self.confusion_matrix)
            else:
                lines.append(
                    f"Confusion matrix left out ({len(self.classes)} classes); "
                    "it is in the JSON report"
                )
        if self.misclassified:
            lines += ["", f"Mistakes ({len(self.misclassified)}), most confident first:"]
            lines += [
                f"  {item['path']}: {item['true']} predicted as {item['predicted']} "
                f"({item['confidence']:.0%})"
                for item in self.misclassified[:_LISTED]
            ]
            lines += _more(len(self.misclassified))
        if self.errors:
            lines += ["", f"Not evaluated ({len(self.errors)}):"]
            lines += [f"  {item['path']}: {item['error']}" for item in self.errors[:_LISTED]]
            lines += _more(len(self.errors))
        return "\n".join(lines)


def _per_class_lines(classes: list[str], per_class: dict[str, dict[str, Any]]) -> list[str]:
    width = max(5, *(len(name) for name in classes))
    lines = [f"{'class':<{width}}  precision  recall      f1  support"]
    for name in classes:
        m = per_class[name]
        lines.append(
            f"{name:<{width}}  {m['precision']:>9.3f}  {m['recall']:>6.3f}  {m['f1']:>6.3f}"
            f"  {m['support']:>7d}"
        )
    return lines


def _matrix_lines(classes: list[str], matrix: list[list[int]]) -> list[str]:
    largest = max((value for row in matrix for value in row), default=0)
    cell = max(4, min(10, max(len(name) for name in classes)), len(str(largest)))
    label = min(30, max(len(name) for name in classes))
    header = " " * label + "  " + " ".join(_fit(name, cell).rjust(cell) for name in classes)
    rows = [
        _fit(name, label).ljust(label) + "  " + " ".join(str(v).rjust(cell) for v in row)
        for name, row in zip(classes, matrix, strict=True)
    ]
    return [header, *rows]


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _more(count: int) -> list[str]:
    return [f"  … and {count - _LISTED} more"] if count > _LISTED else []


def compute_metrics(
    true: Sequence[int], predicted: Sequence[int], classes: Sequence[str]
) -> Evaluation:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of label lists.

    A class never predicted has precision 0, one with no true images recall 0, and F1 is 0
    when precision and recall are both 0; no division warning is raised.

    Args:
        true: The true class index of each image.
        predicted: The predicted class index of each image.
        classes: Class names, indexed by the labels.

    Returns:
        The evaluation (no paths, so no ``misclassified`` or ``errors``).

    Raises:
        ValueError: The lists differ in length, or a label is not a class index.
    """
    count = len(classes)
    true_array = np.asarray(true, dtype=np.int64).reshape(-1)
    predicted_array = np.asarray(predicted, dtype=np.int64).reshape(-1)
    if true_array.shape != predicted_array.shape:
        raise ValueError(f"{true_array.size} true labels but {predicted_array.size} predictions")
    both = np.concatenate([true_array, predicted_array])
    if both.size and (both.min() < 0 or both.max() >= count):
        raise ValueError(f"labels must be between 0 and {count - 1}")
    matrix = np.bincount(true_array * count + predicted_array, minlength=count * count)
    matrix = matrix.reshape(count, count)
    hits = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted_totals = matrix.sum(axis=0)
    precision = np.divide(hits, predicted_totals, out=np.zeros(count), where=predicted_totals > 0)
    recall = np.divide(hits, support, out=np.zeros(count), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(count), where=total > 0)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
    accuracy = float(hits.sum() / true_array.size) if true_array.size else 0.0
    return Evaluation(list(classes), accuracy, per_class, matrix.tolist())


def evaluate_items(
    classifier: Classifier,
    items: Sequence[tuple[Path, int]],
    classes: Sequence[str],
    *,
    batch_size: int | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    tta: bool = False,
) -> Evaluation:
    """Classify labelled images and score the top prediction.

    Labels are matched to the model's classes by name. The evaluation's classes are the
    model's classes that are either a label's class or predicted at least once, in the
    model's order; when ``classes`` are the model's own, that is all of them.

    Args:
        classifier: A backend from ``open_classifier``.
        items: ``(image path, index into classes)`` pairs.
        classes: The names of the labels.
        batch_size: Images per inference call (default: the classifier's best).
        progress: Called with (fraction done, message).
        cancel: Checked between images; raises ``Cancelled`` when set.
        tta: Score the probabilities averaged over the test-time augmentation views, and
            report the accuracy without them too (one pass: view 0 is the plain input).

    Returns:
        The evaluation. Unreadable images and images of a class the model does not have are
        in ``errors`` and count in no metric.

    Raises:
        ValueError: A label is not an index into ``classes``.
    """
    model_names = list(classifier.spec.class_names)
    model_index: dict[str, int] = {}
    for i, name in enumerate(model_names):
        model_index.setdefault(name, i)
    errors: list[dict[str, str]] = []
    known: list[tuple[Path, int]] = []  # (path, model index of its true class)
    for path, label in items:
        if not 0 <= label < len(classes):
            raise ValueError(f"label {label} of {path} is not a class index")
        if classes[label] in model_index:
            known.append((Path(path), model_index[classes[label]]))
        else:
            reason = f"class '{classes[label]}' is not one of the model's classes"
            errors.append({"path": str(path), "error": reason})
    outcomes: list[tuple[Path, int, int, float]] = []  # (path, true, predicted, confidence)
    verdicts: list[bool | None] = []
    without_tta: list[int] = []  # with tta: each outcome's prediction on the plain input
    results = classify_paths(
        [path for path, _ in known],
        classifier,
        top_k=1,
        batch_size=batch_size,
        progress=lambda fraction, message: progress(fraction, f"Evaluating {message}"),
        cancel=cancel,
        tta=tta,
    )
    for (path, true_index), result in zip(known, results, strict=True):
        if result.error is not None:
            errors.append({"path": str(path), "error": result.error})
        else:
            top = result.predictions[0]
            outcomes.append((path, true_index, top.index, top.confidence))
            verdicts.append(result.unknown)
            if result.plain_index is not None:
                without_tta.append(result.plain_index)
    shown = sorted(
        {model_index[name] for name in classes if name in model_index}
        | {predicted for _, _, predicted, _ in outcomes}
    )
    position = {model: i for i, model in enumerate(shown)}
    evaluation = compute_metrics(
        [position[true] for _, true, _, _ in outcomes],
        [position[predicted] for _, _, predicted, _ in outcomes],
        [model_names[i] for i in shown],
    )
    mistakes = [outcome for outcome in outcomes if outcome[1] != outcome[2]]
    mistakes.sort(key=lambda outcome: -outcome[3])
    evaluation.misclassified = [
        {
            "path": str(path),
            "true": model_names[true],
            "predicted": model_names[predicted],
            "confidence": confidence,
        }
        for path, true, predicted, confidence in mistakes
    ]
    evaluation.errors = errors
    if verdicts and None not in verdicts:
        evaluation.unknown = unknown_summary(
            [bool(v) for v in verdicts], [true == guess for _, true, guess, _ in outcomes]
        )
    if tta:
        evaluation.tta = tta_summary(outcomes, without_tta, evaluation.accuracy)
    return evaluation


def evaluate_folder(
    classifier: Classifier,
    data_dir: str | os.PathLike[str],
    *,
    batch_size: int | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    tta: bool = False,
) -> Evaluation:
    """Score a model on a folder of labelled images (one sub-folder per class).

    In the split layout (``train/``, ``val/``, maybe ``test/``) the model is scored on
    ``test/`` if there is one, else on ``val/``; otherwise on every image. Folder names are
    matched to the model's class names. One class, or one image, is enough.

    The caller opens the model (``open_classifier(bundle, backend, device)``), so that this
    module never depends on the torch backend and a model already open is reused.

    Args:
        classifier: The model, from ``open_classifier``.
        data_dir: The labelled folder.
        batch_size: Images per inference call (default: the classifier's best).
        progress: Called with (fraction done, message).
        cancel: Checked between files; raises ``Cancelled`` when set.
        tta: Test-time augmentation, as in :func:`evaluate_items`.

    Returns:
        The evaluation. Images of a folder class the model does not have, unreadable images
        and images found in two class folders (ambiguous label) are in ``errors``.

    Raises:
        DatasetError: The folder does not exist or has no class folders with images.
    """
    report = scan_folder(
        data_dir,
        check_images=False,  # the model decodes every image anyway, and reports bad ones
        for_training=False,
        progress=lambda fraction, message: progress(0.1 * fraction, message),
        cancel=cancel,
    )
    split = "all"
    if report.layout == "split":
        split = "test" if report.items.get("test") else "val"
        if not report.items.get(split):
            raise DatasetError(f"no images in {split}/ of {report.root} to evaluate on")
    evaluation = evaluate_items(
        classifier,
        report.items[split],
        report.classes,
        batch_size=batch_size,
        progress=lambda fraction, message: progress(0.1 + 0.9 * fraction, message),
        cancel=cancel,
        tta=tta,
    )
    for path, reason in report.skipped:
        if reason.startswith(("unreadable", "same image also in class")) and _in_split(
            path, report.root, split
        ):
            evaluation.errors.append({"path": str(path), "error": reason})
    return evaluation


def _in_split(path: Path, root: Path, split: str) -> bool:
    """Whether ``path`` (under ``root``) belongs to the split being evaluated."""
    if split == "all":
        return True
    parts = path.relative_to(root).parts
    return bool(parts) and parts[0].casefold() in SPLIT_FOLDER_NAMES[split]
