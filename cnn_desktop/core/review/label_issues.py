"""Suspected label errors, confident-learning style, in numpy.

Out-of-fold probabilities come from the linear softmax head of head-mode training, fitted K
times on the frozen embeddings, each time leaving one stratified fold out. The flagging is
cleanlab's ``filter.find_label_issues`` with its defaults (``filter_by="prune_by_noise_rate"``,
``min_examples_per_class=1``, ``frac_noise=1``), re-implemented here because cleanlab needs
scikit-learn and pandas, which the lite flavour does not carry (Northcutt, Jiang & Chuang,
"Confident Learning", JAIR 2021):

1. per-class thresholds: the mean self-confidence (probability of the given label) of each
   class's images;
2. the confident joint: each image counted under (given label, the most probable class among
   those whose probability reaches their threshold), calibrated to the given label counts;
3. for each off-diagonal cell (given i, true j) of it, that many images of class i with the
   largest margin ``p_j - p_i`` are flagged;
4. images the model predicts as labelled are never flagged.

The flagged images are ranked by the normalized margin (``(p_given - max_other + 1) / 2``,
cleanlab's ``get_normalized_margin_for_each_label``): lowest first.
"""

from __future__ import annotations

import numpy as np

from cnn_desktop.core.tasks import CancelToken, ProgressCallback, no_progress
from cnn_desktop.core.training.config import DEFAULTS, LABEL_SMOOTHING
from cnn_desktop.core.training.linear_head import AdamW, LinearHead, train_step

FOLDS = 5
FOLD_EPOCHS = 30
FOLD_BATCH_SIZE = 256  # four times head training's: as good here, and a quarter of the steps
_FLOAT_TOLERANCE = 1e-6


def fit_head(
    x: np.ndarray,
    labels: np.ndarray,
    classes: int,
    *,
    seed: int = 0,
    epochs: int = FOLD_EPOCHS,
    cancel: CancelToken | None = None,
) -> LinearHead:
    """A linear head fitted on embeddings ``x`` with head training's optimiser and loss."""
    defaults = DEFAULTS["head"]
    rng = np.random.default_rng(seed)
    head = LinearHead.initial(x.shape[1], classes, rng)
    optimiser = AdamW(lr=defaults["lr"], weight_decay=1e-4)
    batch = FOLD_BATCH_SIZE
    for _ in range(epochs):
        if cancel is not None:
            cancel.raise_if_cancelled()
        order = rng.permutation(len(x))
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            train_step(head, optimiser, x[index], labels[index], LABEL_SMOOTHING, None)
    return head


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """The fold (0 … folds-1) of each image: every class spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), np.int64)
    offset = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold_of[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)  # small classes do not all start in fold 0
    return fold_of


def out_of_fold_probabilities(
    x: np.ndarray,
    labels: np.ndarray,
    classes: int,
    *,
    folds: int = FOLDS,
    seed: int = 0,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Class probabilities ``[N, classes]`` of each image from a head that never saw it."""
    fold_of = stratified_folds(labels, folds, seed)
    probabilities = np.zeros((len(x), classes), np.float64)
    for fold in range(folds):
        progress(fold / folds, f"Cross-validating: fold {fold + 1} of {folds}")
        held_out = fold_of == fold
        if not held_out.any():
            continue
        head = fit_head(x[~held_out], labels[~held_out], classes, seed=seed + fold, cancel=cancel)
        probabilities[held_out] = head.probabilities(x[held_out])
    progress(1.0, f"Cross-validated on {folds} folds")
    return probabilities


def confident_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Mean self-confidence per class (2, above any probability, for a class with no image)."""
    classes = probabilities.shape[1]
    thresholds = np.full(classes, 2.0)
    for k in range(classes):
        members = labels == k
        if members.any():
            thresholds[k] = probabilities[members, k].mean()
    return np.clip(thresholds, 2 * _FLOAT_TOLERANCE, None)


def confident_joint(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Counts ``[given, true]`` of the confidently counted images, calibrated so that row ``i``
    sums to the number of images labelled ``i`` (integers, row totals kept)."""
    classes = probabilities.shape[1]
    above = probabilities >= confident_thresholds(labels, probabilities) - _FLOAT_TOLERANCE
    confident_count = above.sum(axis=1)
    guess = np.where(confident_count > 1, probabilities.argmax(1), above.argmax(1))
    counted = confident_count > 0
    joint = np.zeros((classes, classes), np.int64)
    np.add.at(joint, (labels[counted], guess[counted]), 1)
    np.fill_diagonal(joint, np.maximum(joint.diagonal(), 1))
    label_counts = np.bincount(labels, minlength=classes)
    # The same operations on the same types as cleanlab's, so that rounding ties break alike.
    calibrated = (joint.T / np.clip(joint.sum(axis=1), 1e-100, None) * label_counts).T
    calibrated = calibrated / np.clip(np.sum(calibrated), 1e-100, None) * int(label_counts.sum())
    return np.array([_round_keeping_sum(row) for row in calibrated], np.int64)


def find_label_issues(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Indices of the images whose label is probably wrong, most suspicious first.

    Args:
        labels: Given class index of each image.
        probabilities: Out-of-fold class probabilities ``[N, classes]``.
    """
    labels = np.asarray(labels, np.int64)
    prune = _keep_one_per_class(confident_joint(labels, probabilities).T)  # [true, given]
    flagged = np.zeros(len(labels), bool)
    classes = probabilities.shape[1]
    for given in range(classes):
        members = np.flatnonzero(labels == given)
        if len(members) <= 1:
            continue
        for true in range(classes):
            count = int(prune[true, given])
            if true != given and count > 0:
                margin = probabilities[members, true] - probabilities[members, given]
                flagged[members[np.argsort(-margin, kind="stable")[:count]]] = True
    issues = np.flatnonzero(flagged & predicts_another_class(labels, probabilities))
    quality = normalized_margin(labels, probabilities)[issues]
    return issues[np.argsort(quality, kind="stable")]


def predicts_another_class(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Whether each image's most probable class is not its label (a tie goes to the label)."""
    biased = probabilities.copy()
    biased[np.arange(len(labels)), labels] += _FLOAT_TOLERANCE
    return biased.argmax(1) != labels


def normalized_margin(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """``(p_given - max_other + 1) / 2`` per image: 1 sure of the label, 0 sure of another."""
    rows = np.arange(len(labels))
    given = probabilities[rows, labels]
    others = probabilities.copy()
    others[rows, labels] = -np.inf
    return (given - others.max(axis=1) + 1) / 2


def _keep_one_per_class(prune: np.ndarray) -> np.ndarray:
    """cleanlab's ``_keep_at_least_n_per_class`` with n = 1 and frac_noise = 1: every given
    class keeps at least one image (raising a diagonal takes the same from its column)."""
    diagonal = prune.diagonal().astype(np.float64)
    new_diagonal = np.maximum(diagonal, 1)
    nonzero_noise = np.maximum(np.count_nonzero(prune, axis=0) - 1.0, 1.0)
    adjusted = prune - (new_diagonal - diagonal) / nonzero_noise
    adjusted[adjusted < 0] = 0
    np.fill_diagonal(adjusted, new_diagonal)
    return adjusted.astype(np.int64)  # truncated, as cleanlab's _reduce_prune_counts does


def _round_keeping_sum(values: np.ndarray) -> np.ndarray:
    """Round to integers keeping the (rounded) total, as cleanlab's ``round_preserving_sum``."""
    floats = np.asarray(values, np.float64)
    ints = floats.round()
    target = round(float(floats.sum()))
    while (diff := target - round(float(ints.sum()))) != 0:
        step = 1 if diff > 0 else -1
        changes = min(abs(diff), len(ints))
        order = np.argsort(floats - ints)[::-step][:changes]
        ints[order] += step
    return ints.astype(np.int64)
