"""Head-only training: a frozen pretrained backbone, embeddings computed once (and cached on
disk), a linear classifier trained on them in seconds."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from cnn_desktop.core.models.pretrained import (
    cache_dir,
    default_model_bundle,
    load_pretrained_model,
    writable_folder,
)
from cnn_desktop.core.models.torch_random import PrivateRandom
from cnn_desktop.core.tasks import CancelToken
from cnn_desktop.core.training.config import (
    LABEL_SMOOTHING,
    TrainConfig,
    TrainEvent,
    class_balance,
    training_provenance,
)
from cnn_desktop.core.training.dataset import ScanReport
from cnn_desktop.core.training.embeddings import EmbeddingCache, EmbeddingModel, embed_paths
from cnn_desktop.core.training.evaluate import Evaluation, compute_metrics
from cnn_desktop.core.training.output import finish
from cnn_desktop.core.training.splits import Split, class_weights


def _embed(
    items: list[tuple[Path, int]],
    model: EmbeddingModel,
    cache: EmbeddingCache,
    digests: dict[Path, bytes],
    cancel: CancelToken | None,
    events: list[TrainEvent],
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
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


class _HeadAdamW:
    """AdamW (Loshchilov & Hutter) for the one linear layer of head training.

    ``torch.optim`` imports TorchDynamo the first time an optimizer is built, which costs
    about 2 s — most of a warm head-mode run; these few lines do the same update.
    """

    def __init__(self, module: nn.Module, lr: float, weight_decay: float) -> None:
        self.params = list(module.parameters())
        self.lr, self.weight_decay = lr, weight_decay
        self.betas, self.eps, self.steps = (0.9, 0.999), 1e-8, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            p.mul_(1 - self.lr * self.weight_decay)
            m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            m_hat = m / (1 - beta1**self.steps)
            v_hat = v / (1 - beta2**self.steps)
            p.addcdiv_(m_hat, v_hat.sqrt().add_(self.eps), value=-self.lr)


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
        if message.startswith("Warning"):
            notes.append(message)

    bundle = default_model_bundle(note)
    embedder = EmbeddingModel(bundle, config.device)
    cache = EmbeddingCache(writable_folder(cache_dir() / "embeddings", note), embedder.key)
    for message in notes:
        yield TrainEvent("embed", message=message)
    yield TrainEvent("embed", message="Computing image embeddings (cached for next time)…")
    pending: list[TrainEvent] = []
    x_train, y_train, _ = _embed(split.train, embedder, cache, report.digests, cancel, pending)
    yield from pending
    pending.clear()
    x_val, y_val, val_paths = _embed(split.val, embedder, cache, report.digests, cancel, pending)
    yield from pending

    classes = len(report.classes)
    with PrivateRandom(config.seed):  # the head's initial weights, from the run's own stream
        head = nn.Linear(x_train.shape[1], classes)
    weights = None
    if class_balance(report, split, config) != "none":
        weights = torch.as_tensor(class_weights(y_train.tolist(), classes), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=LABEL_SMOOTHING)
    optimizer = _HeadAdamW(head, lr=config.lr, weight_decay=1e-4)
    inputs, targets = torch.from_numpy(x_train), torch.from_numpy(y_train)
    val_inputs, val_targets = torch.from_numpy(x_val), torch.from_numpy(y_val)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    best_state, best_accuracy, best_loss, stale = None, -1.0, math.inf, 0
    epochs = config.epochs
    cancelled = False
    train_started = time.monotonic()
    for epoch in range(1, epochs + 1):
        if cancel is not None and cancel.cancelled:
            cancelled = True
            break
        head.train()
        order = torch.randperm(len(inputs), generator=generator)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            head.zero_grad(set_to_none=True)
            logits = head(inputs[index])
            loss = loss_fn(logits, targets[index])
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(index)
            correct += int((logits.argmax(1) == targets[index]).sum())
        head.eval()
        with torch.no_grad():
            val_logits = head(val_inputs)
            val_loss = float(loss_fn(val_logits, val_targets)) if len(val_targets) else math.nan
            val_accuracy = (
                float((val_logits.argmax(1) == val_targets).float().mean())
                if len(val_targets)
                else math.nan
            )
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
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
            best_accuracy, best_loss, stale = score, val_loss, 0
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is None:
        from cnn_desktop.core.tasks import Cancelled

        raise Cancelled("cancelled before the first epoch finished")
    model = load_pretrained_model()
    with PrivateRandom(config.seed):  # its initial weights are replaced at once
        model.reset_classifier(classes)
    model.classifier.load_state_dict(best_state)
    spec = dataclasses.replace(
        bundle.spec,
        name=out.stem,
        class_names=report.classes,
        provenance=training_provenance(report, config),
    )
    proto = graph_with_new_head(bundle, best_state["weight"].numpy(), best_state["bias"].numpy())
    evaluation = None
    if len(y_val) and not split.test:
        # The validation images' embeddings are at hand: score the best head on them (the
        # export check below verifies that the saved ONNX model gives the same outputs).
        head.load_state_dict(best_state)
        with torch.no_grad():
            probabilities = head(val_inputs).softmax(-1).numpy()
        evaluation = head_evaluation(probabilities, y_val, val_paths, report.classes)
    training = {
        "mode": "head",
        "best_val_accuracy": best_accuracy,
        "epochs_run": len(history),
        "seconds": round(time.monotonic() - started, 2),
        "train_images": len(y_train),
        "val_images": len(y_val),
    }
    yield from finish(
        model,
        spec,
        report,
        split,
        out,
        config,
        history,
        cancelled=cancelled,
        training=training,
        proto=proto,
        evaluation=evaluation,
    )
