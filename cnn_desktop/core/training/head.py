"""Head-only training: a frozen pretrained backbone, embeddings computed once with ONNX Runtime
(and cached on disk), a linear classifier trained on them in numpy in seconds. No torch: the
new head goes into the pretrained ONNX graph, and the saved model is checked on ONNX Runtime
against the head applied to the backbone's embeddings."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import load_file

from cnn_desktop.core.models.bundle import ModelBundle
from cnn_desktop.core.models.pretrained import cache_dir, default_model_bundle, writable_folder
from cnn_desktop.core.tasks import Cancelled, CancelToken
from cnn_desktop.core.training.calibration import calibrate
from cnn_desktop.core.training.config import (
    LABEL_SMOOTHING,
    TrainConfig,
    TrainEvent,
    TrainRunError,
    class_balance,
    training_provenance,
)
from cnn_desktop.core.training.dataset import ScanReport, vanished_message
from cnn_desktop.core.training.embeddings import EmbeddingCache, EmbeddingModel, embed_paths
from cnn_desktop.core.training.evaluate import Evaluation, compute_metrics
from cnn_desktop.core.training.linear_head import (
    AdamW,
    LinearHead,
    smoothed_cross_entropy,
    train_step,
)
from cnn_desktop.core.training.output import finish
from cnn_desktop.core.training.splits import Split, balanced_sample_weights, class_weights
from cnn_desktop.core.training.unknown import fit_unknown_detector

WARNING = "Warning: "  # how the model cache's progress messages mark what a person must read
EMBEDDINGS_KEPT = (
    "; nothing was saved, the embeddings computed so far stay cached: restore the images and "
    "train again"
)


def _embed(
    items: list[tuple[Path, int]],
    model: EmbeddingModel,
    cache: EmbeddingCache,
    digests: dict[Path, bytes],
    cancel: CancelToken | None,
    events: list[TrainEvent],
    root: Path,
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """The embeddings of ``items`` (unreadable images left out), their labels and paths.

    Raises:
        TrainRunError: Images (or the whole folder ``root``) vanished since the scan.
    """
    vectors, labels, kept = [], [], []
    paths = [path for path, _ in items]
    label_of = dict(items)
    for path, vector, _error in embed_paths(
        paths,
        model,
        cache,
        known_digests=digests,
        cancel=cancel,
        progress=lambda f, m: events.append(TrainEvent("embed", fraction=f, message=m)),
    ):
        if vector is None and not os.path.lexists(path):
            raise TrainRunError(vanished_message(root, path) + EMBEDDINGS_KEPT)
        if vector is not None:
            vectors.append(vector)
            labels.append(label_of[path])
            kept.append(path)
    dim = vectors[0].shape[-1] if vectors else model.width
    array = np.asarray(vectors, np.float32).reshape(-1, dim)
    return array, np.asarray(labels, np.int64), kept


def graph_with_new_head(bundle, weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """The pretrained bundle's ONNX graph with its final ``Gemm`` replaced by the new head.

    The backbone is frozen, so its graph is reused as exported (and verified) before; only
    the classifier's weights and the output size change. No re-export is needed.
    """
    proto = onnx.load(str(bundle.onnx_path))
    gemm = next(node for node in reversed(proto.graph.node) if node.op_type == "Gemm")
    trans_b = next((a.i for a in gemm.attribute if a.name == "transB"), 0)
    replacements = {gemm.input[1]: weight if trans_b else weight.T, gemm.input[2]: bias}
    for index, tensor in enumerate(proto.graph.initializer):
        if tensor.name in replacements:
            new = numpy_helper.from_array(
                np.ascontiguousarray(replacements[tensor.name], np.float32), tensor.name
            )
            proto.graph.initializer[index].CopyFrom(new)
    classes = int(bias.shape[0])
    for output in proto.graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims) == 2:
            dims[1].ClearField("dim_param")
            dims[1].dim_value = classes
    kept = [v for v in proto.graph.value_info if len(v.type.tensor_type.shape.dim) != 2]
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(kept)
    return proto


def head_evaluation(
    probabilities: np.ndarray, labels: np.ndarray, paths: list[Path], classes: tuple[str, ...]
) -> Evaluation:
    """Metrics and the list of mistakes from the head's validation probabilities."""
    predicted = probabilities.argmax(1)
    evaluation = compute_metrics(labels.tolist(), predicted.tolist(), classes)
    mistakes = [
        {
            "path": str(path),
            "true": classes[int(true)],
            "predicted": classes[int(guess)],
            "confidence": float(row[guess]),
        }
        for path, true, guess, row in zip(paths, labels, predicted, probabilities, strict=True)
        if true != guess
    ]
    evaluation.misclassified = sorted(mistakes, key=lambda m: -m["confidence"])
    return evaluation


def head_weights(bundle: ModelBundle, head: LinearHead) -> dict[str, np.ndarray]:
    """The pretrained model's weights with its classifier replaced by ``head`` (what a full
    fine-tune of the saved model starts from)."""
    weights = load_file(str(bundle.weights_path)) if bundle.weights_path else {}
    weights["classifier.weight"] = head.weight
    weights["classifier.bias"] = head.bias
    return weights


def _epoch_order(
    count: int, rng: np.random.Generator, sample_weights: np.ndarray | None
) -> np.ndarray:
    """This epoch's training images: a shuffle, or with the balanced sampler as many draws
    (with replacement) in which every class is equally likely."""
    if sample_weights is None:
        return rng.permutation(count)
    return rng.choice(count, size=count, replace=True, p=sample_weights / sample_weights.sum())


def train_head(
    report: ScanReport,
    split: Split,
    out: Path,
    config: TrainConfig,
    cancel: CancelToken | None,
    started: float,
) -> Iterator[TrainEvent]:
    """Train a linear head on cached embeddings of the built-in model; yield events."""
    notes: list[str] = []  # e.g. the cache cannot be written and a stand-in is used

    def note(_fraction: float, message: str) -> None:
        if message.startswith(WARNING):
            notes.append(message.removeprefix(WARNING))

    bundle = default_model_bundle(note)
    embedder = EmbeddingModel(bundle, config.device)
    cache = EmbeddingCache(writable_folder(cache_dir() / "embeddings", note), embedder.key)
    for message in (*notes, embedder.notice):
        if message:
            yield TrainEvent("notice", message=message)
    yield TrainEvent(
        "embed",
        message="Computing image embeddings (cached for next time)…",
        data={"device": f"ONNX Runtime {embedder.session.get_providers()[0]}"},
    )
    pending: list[TrainEvent] = []
    root = report.root
    x_train, y_train, _ = _embed(
        split.train, embedder, cache, report.digests, cancel, pending, root
    )
    yield from pending
    pending.clear()
    x_val, y_val, val_paths = _embed(
        split.val, embedder, cache, report.digests, cancel, pending, root
    )
    yield from pending

    classes = len(report.classes)
    rng = np.random.default_rng(config.seed)  # the run's own stream: init, then the epochs
    head = LinearHead.initial(x_train.shape[1], classes, rng)
    balance = class_balance(report, split, config)
    weights = class_weights(y_train.tolist(), classes) if balance == "weights" else None
    sample_weights = balanced_sample_weights(y_train.tolist()) if balance == "sampler" else None
    optimiser = AdamW(lr=config.lr, weight_decay=1e-4)
    history: list[dict[str, float]] = []
    best, best_accuracy, best_loss, stale = None, -1.0, math.inf, 0
    epochs = config.epochs
    cancelled = False
    train_started = time.monotonic()
    for epoch in range(1, epochs + 1):
        if cancel is not None and cancel.cancelled:
            cancelled = True
            break
        order = _epoch_order(len(x_train), rng, sample_weights)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            loss, right = train_step(
                head, optimiser, x_train[index], y_train[index], LABEL_SMOOTHING, weights
            )
            loss_sum += loss * len(index)
            correct += right
        val_loss, val_accuracy = math.nan, math.nan
        if len(y_val):
            val_logits = head.logits(x_val)
            val_loss = smoothed_cross_entropy(val_logits, y_val, LABEL_SMOOTHING, weights)[0]
            val_accuracy = float((val_logits.argmax(1) == y_val).mean())
        record = {
            "epoch": epoch,
            "loss": loss_sum / max(1, len(order)),
            "accuracy": correct / max(1, len(order)),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "lr": config.lr,
        }
        history.append(record)
        elapsed = time.monotonic() - train_started
        yield TrainEvent(
            "epoch",
            epoch=epoch,
            epochs=epochs,
            loss=record["loss"],
            accuracy=record["accuracy"],
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            lr=config.lr,
            images_per_s=epoch * len(order) / elapsed if elapsed > 0 else math.nan,
            eta_s=elapsed / epoch * (epochs - epoch),
            fraction=epoch / epochs,
        )
        score = val_accuracy if not math.isnan(val_accuracy) else record["accuracy"]
        if score > best_accuracy or (score == best_accuracy and val_loss < best_loss):
            best, best_accuracy, best_loss, stale = head.copy(), score, val_loss, 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best is None:
        raise Cancelled("cancelled before the first epoch finished")
    if not root.is_dir():  # deleted while the head trained: the export cannot be checked
        raise TrainRunError(vanished_message(root, root) + EMBEDDINGS_KEPT)
    # Calibrate on the validation embeddings; the exported graph's head is scaled by 1/T (its
    # output is calibrated), the saved weights stay raw and the spec carries T.
    calibration = calibrate(best.logits(x_val), y_val)
    calibrated = best.scaled(1.0 / calibration["temperature"])
    spec = dataclasses.replace(
        bundle.spec,
        name=out.stem,
        class_names=report.classes,
        provenance=training_provenance(report, config),
        temperature=calibration["temperature"],
    )
    proto = graph_with_new_head(bundle, calibrated.weight, calibrated.bias)
    # The unknown detector: the backbone's embeddings are the graph's, so no extra pass.
    unknown = fit_unknown_detector(
        x_train, y_train, calibrated.probabilities(x_val), x_val, config.seed
    )
    evaluation = None
    if len(y_val) and not split.test:
        # The validation images' embeddings are at hand: score the best head on them (the
        # export check below verifies that the saved ONNX model gives the same outputs).
        evaluation = head_evaluation(
            calibrated.probabilities(x_val), y_val, val_paths, report.classes
        )
    training = {
        "mode": "head",
        "best_val_accuracy": best_accuracy,
        "epochs_run": len(history),
        "seconds": round(time.monotonic() - started, 2),
        "train_images": len(y_train),
        "val_images": len(y_val),
    }
    yield from finish(
        lambda batch: calibrated.probabilities(embedder(batch)),
        spec,
        proto,
        head_weights(bundle, best),
        report,
        split,
        out,
        config,
        history,
        cancelled=cancelled,
        training=training,
        evaluation=evaluation,
        calibration=calibration,
        unknown=unknown,
        checked_against="the calibrated head on the backbone's embeddings",
    )
