"""Review a class-folder dataset: suspected label errors, duplicates and outliers.

Every image is embedded by a frozen backbone (the same embeddings, from the same cache, as
head-mode training). Then:

* **label**: every image that a linear head trained without it (5-fold, out-of-fold) puts in
  another class, ranked by the normalized margin; the ones that confident learning flags
  (:mod:`.label_issues`) are marked ``confident``. (On the benchmark the margin over all of
  them ranks the planted errors better than confident learning's own, smaller set: see
  ``benchmarks/bench_review.py``.) ``suggested`` is the class the held-out head prefers;
* **duplicate**: the same file (same content digest) or a near copy (cosine similarity of the
  embeddings at or above :data:`DUPLICATE_SIMILARITY`) in the same or another class;
* **outlier**: images far from every other one (:func:`.similarity.outlier_indices`).

Scores lie in [0, 1], higher first. Above 0.5 a finding most likely needs a fix: a label error
(its normalized margin's complement, always above 0.5), the same image under two classes
(exact: 1, near: the similarity). At or below 0.5 it is worth a look: copies within one class
(half the similarity), outliers (half the distance to their nearest neighbours).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnn_desktop.core.models.bundle import ModelBundle, load_bundle
from cnn_desktop.core.models.pretrained import cache_dir, default_model_bundle, writable_folder
from cnn_desktop.core.review.label_issues import (
    find_label_issues,
    fit_head,
    normalized_margin,
    out_of_fold_probabilities,
    predicts_another_class,
)
from cnn_desktop.core.review.moves import MOVES_LOG, MoveError, class_folder_of
from cnn_desktop.core.review.similarity import neighbourhood, outlier_indices
from cnn_desktop.core.tasks import CancelToken, ProgressCallback, no_progress
from cnn_desktop.core.training.dataset import DatasetError, ScanReport, scan_folder
from cnn_desktop.core.training.embeddings import EmbeddingCache, EmbeddingModel, embed_paths

DUPLICATE_SIMILARITY = 0.98
OUTLIER_SPREAD = 10.0
KINDS = ("label", "duplicate", "outlier")
# Share of the progress bar per stage: scan, embed, cross-validate, compare.
_STAGES = ((0.0, 0.1), (0.1, 0.85), (0.85, 0.95), (0.95, 1.0))


@dataclass(frozen=True)
class Finding:
    """One thing a person should look at.

    Attributes:
        kind: ``"label"``, ``"duplicate"`` or ``"outlier"``.
        path: The image concerned.
        given: Its class (the folder it is in).
        suggested: The class it probably belongs to (its own class when nothing suggests
            another: a copy within a class, an outlier the model still puts there).
        score: How sure and how serious, in [0, 1]; findings are sorted by it, highest first.
        other: Duplicates: the image it copies.
        similarity: Duplicates: cosine similarity of the two embeddings (1 for the same file).
        confident: Label findings: confident learning flags it too (the per-class thresholds
            and the confident joint count it among the estimated label errors).
    """

    kind: str
    path: Path
    given: str
    suggested: str
    score: float
    other: Path | None = None
    similarity: float | None = None
    confident: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: kind, path, given, suggested, score (and other, similarity for
        duplicates, confident for label findings)."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "path": str(self.path),
            "given": self.given,
            "suggested": self.suggested,
            "score": round(self.score, 6),
        }
        if self.confident is not None:
            data["confident"] = self.confident
        if self.other is not None:
            data["other"] = str(self.other)
            data["similarity"] = round(float(self.similarity or 0.0), 6)
        return data


@dataclass(frozen=True)
class ReviewReport:
    """What :func:`review_folder` found: the findings, best first, and what was left out."""

    root: Path
    classes: tuple[str, ...]
    images: int
    findings: list[Finding]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    embedded_by: str = ""
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Findings per kind."""
        return {kind: sum(f.kind == kind for f in self.findings) for kind in KINDS}


def review_folder(
    root: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    duplicate_similarity: float = DUPLICATE_SIMILARITY,
    outlier_spread: float = OUTLIER_SPREAD,
    seed: int = 0,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ReviewReport:
    """Find suspected label errors, duplicates and outliers in a class-folder dataset.

    Args:
        root: A folder of class folders (or train/val/test split folders of them).
        model: A bundle whose backbone embeds the images. A head-only model embeds with the
            built-in backbone it was trained on (cached embeddings are reused); any other
            model with its own backbone. None: the built-in model.
        device: ``auto``, ``cpu`` or ``cuda`` for the embeddings.
        duplicate_similarity: Cosine similarity from which two images count as duplicates.
        outlier_spread: Robust standard deviations above the median neighbour distance from
            which an image counts as an outlier.
        seed: Seed of the folds and of the heads.
        progress: Called with (fraction done, message).
        cancel: Checked throughout; raises ``Cancelled`` when set.

    Raises:
        DatasetError: The folder cannot be reviewed (missing, fewer than two classes…).
        BundleError, PretrainedError: The model cannot be opened.
    """
    stage = [_stage(progress, *span) for span in _STAGES]
    notes: list[str] = []
    report = scan_folder(root, for_training=False, progress=stage[0], cancel=cancel)
    if len(report.classes) < 2:
        raise DatasetError(f"{report.root} has only one class; a review needs at least two")
    bundle, embedded_by = _embedding_bundle(model, notes)
    embedder = EmbeddingModel(bundle, device)
    cache_folder = writable_folder(cache_dir() / "embeddings", lambda _f, m: notes.append(m))
    cache = EmbeddingCache(cache_folder, embedder.key)
    items = [item for split_items in report.items.values() for item in split_items]
    kept = {path for path, _ in items}
    copies = [path for path in report.digests if path not in kept]  # dropped by the scan
    label_of = dict(items)
    skipped = [(p, r) for p, r in report.skipped if p not in report.digests]
    skipped = [(p, r) for p, r in skipped if not (p.name == MOVES_LOG and p.parent == report.root)]
    vectors: dict[Path, np.ndarray] = {}
    for path, vector, error in embed_paths(
        [path for path, _ in items] + copies,
        embedder,
        cache,
        known_digests=report.digests,
        progress=stage[1],
        cancel=cancel,
    ):
        if vector is not None:
            vectors[path] = vector
        else:
            skipped.append((path, error or "could not be embedded"))
    paths = [path for path, _ in items if path in vectors]
    x = np.asarray([vectors[p] for p in paths], np.float32).reshape(len(paths), -1)
    labels = np.asarray([label_of[p] for p in paths], np.int64)
    classes = len(report.classes)
    probabilities = out_of_fold_probabilities(
        x, labels, classes, seed=seed, progress=stage[2], cancel=cancel
    )
    findings = _label_findings(paths, labels, probabilities, report.classes)
    near = neighbourhood(x, duplicate_similarity, progress=stage[3], cancel=cancel)
    findings += _near_duplicates(paths, labels, probabilities, near.pairs, report.classes)
    copy_paths = [p for p in copies if p in vectors]
    if copy_paths:
        head = fit_head(x, labels, classes, seed=seed, cancel=cancel)
        copy_probabilities = head.probabilities(np.asarray([vectors[p] for p in copy_paths]))
        predicted = dict(zip(copy_paths, copy_probabilities, strict=True))
        predicted.update(zip(paths, probabilities, strict=True))
        findings += _exact_duplicates(report, predicted)
    far, distance = outlier_indices(near.nearest_similarity, outlier_spread)
    for index, gap in zip(far, distance, strict=True):
        given = report.classes[labels[index]]
        suggested = report.classes[int(probabilities[index].argmax())]
        findings.append(Finding("outlier", paths[index], given, suggested, 0.5 * float(gap)))
    findings.sort(key=lambda f: (-f.score, KINDS.index(f.kind), str(f.path)))
    skipped.sort(key=lambda entry: str(entry[0]))
    progress(1.0, f"Reviewed {len(paths)} images: {len(findings)} findings")
    return ReviewReport(
        report.root, report.classes, len(paths), findings, skipped, embedded_by, notes
    )


def _stage(progress: ProgressCallback, start: float, end: float) -> ProgressCallback:
    return lambda fraction, message: progress(start + (end - start) * fraction, message)


def _embedding_bundle(
    model: str | os.PathLike[str] | None, notes: list[str]
) -> tuple[ModelBundle, str]:
    """The bundle whose backbone embeds the images, and a phrase saying which it is."""

    def note(fraction: float, message: str) -> None:
        if message.startswith("Warning"):
            notes.append(message)

    if model is None:
        return default_model_bundle(note), "the built-in model's backbone"
    bundle = load_bundle(model)
    if bundle.spec.provenance.get("mode") == "head" and "precision" not in bundle.spec.provenance:
        default = default_model_bundle(note)
        if bundle.spec.architecture == default.spec.architecture:
            return default, f"the built-in backbone that {Path(model).name} was trained on"
    return bundle, f"the backbone of {Path(model).name}"


def _label_findings(
    paths: list[Path], labels: np.ndarray, probabilities: np.ndarray, names: tuple[str, ...]
) -> list[Finding]:
    """Every image the held-out head puts in another class, scored by the normalized margin;
    ``confident`` for those confident learning flags (cleanlab's ``is_label_issue``)."""
    if not len(paths):
        return []
    margins = normalized_margin(labels, probabilities)
    flagged = set(find_label_issues(labels, probabilities).tolist())
    return [
        Finding(
            "label",
            paths[i],
            names[labels[i]],
            names[int(probabilities[i].argmax())],
            1.0 - float(margins[i]),
            confident=i in flagged,
        )
        for i in np.flatnonzero(predicts_another_class(labels, probabilities))
    ]


def _near_duplicates(
    paths: list[Path],
    labels: np.ndarray,
    probabilities: np.ndarray,
    pairs: list[tuple[int, int, float]],
    names: tuple[str, ...],
) -> list[Finding]:
    """One finding per image at most, for its most similar partner. Across classes the image
    the held-out head trusts less in its own class is named, with the other's class."""
    reported: set[int] = set()
    findings = []
    for i, j, similarity in sorted(pairs, key=lambda pair: -pair[2]):
        if labels[i] != labels[j]:
            doubt_i = probabilities[i, labels[i]] - probabilities[i, labels[j]]
            doubt_j = probabilities[j, labels[j]] - probabilities[j, labels[i]]
            path, other = (i, j) if doubt_i <= doubt_j else (j, i)
            score = similarity
        else:
            path, other, score = j, i, 0.5 * similarity
        if path in reported:
            continue
        reported.add(path)
        given, suggested = names[labels[path]], names[labels[other]]
        findings.append(
            Finding("duplicate", paths[path], given, suggested, score, paths[other], similarity)
        )
    return findings


def _exact_duplicates(report: ScanReport, predicted: dict[Path, np.ndarray]) -> list[Finding]:
    """Copies of one file (the scan keeps one copy within a class and none across classes):
    across classes every copy outside the class the head prefers is named, with that class."""
    groups: dict[bytes, list[Path]] = {}
    for path, digest in report.digests.items():
        groups.setdefault(digest, []).append(path)
    index = {name: i for i, name in enumerate(report.classes)}
    findings = []
    for group in groups.values():
        if len(group) < 2:
            continue
        named = [(path, _class_name(report.root, path)) for path in group]
        named = [(path, name) for path, name in named if name in index and path in predicted]
        if len(named) < 2:
            continue
        scores = predicted[named[0][0]]
        best = max({name for _, name in named}, key=lambda name: scores[index[name]])
        keeper = next(path for path, name in named if name == best)
        for path, name in named:
            if path == keeper:
                continue
            score = 0.5 if name == best else 1.0
            findings.append(Finding("duplicate", path, name, best, score, keeper, 1.0))
    return findings


def _class_name(root: Path, path: Path) -> str:
    try:
        return class_folder_of(root, path).name
    except MoveError:
        return ""
