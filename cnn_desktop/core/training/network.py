"""Training a whole network: full fine-tuning of the built-in EfficientNet-Lite0, or a classic
architecture from scratch sized to the user's images (imports torch)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnn_desktop.core.inference.backends.torch import describe_device, torch_device
from cnn_desktop.core.models.export import export_onnx
from cnn_desktop.core.models.pretrained import default_spec, load_pretrained_model
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.models.torch_random import PrivateRandom
from cnn_desktop.core.models.unknown import embedding_width
from cnn_desktop.core.models.zoo import build_model, choose_input, visualisable_layers
from cnn_desktop.core.tasks import Cancelled, CancelToken
from cnn_desktop.core.training.augment import build_augmentation
from cnn_desktop.core.training.calibration import calibrate, softmax
from cnn_desktop.core.training.config import (
    BACKBONE_LR_FACTOR,
    LABEL_SMOOTHING,
    TrainConfig,
    TrainError,
    TrainEvent,
    TrainRunError,
    class_balance,
    training_provenance,
)
from cnn_desktop.core.training.dataset import ScanReport, vanished_message
from cnn_desktop.core.training.loop import (
    ImageFolderDataset,
    MicroBatch,
    Throughput,
    evaluate_loss,
    load_checkpoint,
    make_loader,
    save_checkpoint,
    state_copy,
    train_epoch,
    validation_logits,
    warmup_cosine,
)
from cnn_desktop.core.training.output import finish
from cnn_desktop.core.training.placement import checkpoint_path
from cnn_desktop.core.training.splits import Split, balanced_sample_weights, class_weights
from cnn_desktop.core.training.unknown import fit_unknown_detector


def scratch_spec(report: ScanReport, split: Split, config: TrainConfig) -> ModelSpec:
    """Input size and channels chosen from the user's images (a sample of their headers)."""
    size, channels = choose_input(
        config.arch, [path for path, _ in split.train], config.img_size or 0
    )
    return ModelSpec(
        name="model",
        architecture=config.arch,
        class_names=report.classes,
        input_size=(size, size),
        channels=channels,
        mean=(0.5,) * channels,
        std=(0.5,) * channels,
        interpolation="bilinear",
        resize_mode="stretch",
        crop_fraction=1.0,
    )


def _build(report: ScanReport, split: Split, config: TrainConfig) -> tuple[nn.Module, ModelSpec]:
    classes = len(report.classes)
    if config.mode == "full":
        model = load_pretrained_model()
        model.reset_classifier(classes)
        spec = default_spec()
    else:
        spec = scratch_spec(report, split, config)
        model = build_model(config.arch, classes, spec.channels, spec.input_size)
    spec = dataclasses.replace(
        spec, class_names=report.classes, provenance=training_provenance(report, config)
    )
    return model, spec


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.mode != "full":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.05)
    head = list(model.get_classifier().parameters())
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    return torch.optim.AdamW(
        [
            {"params": backbone, "lr": config.lr * BACKBONE_LR_FACTOR},
            {"params": head, "lr": config.lr},
        ],
        weight_decay=0.05,
    )


def train_network(
    report: ScanReport,
    split: Split,
    out: Path,
    config: TrainConfig,
    cancel: CancelToken | None,
    started: float,
) -> Iterator[TrainEvent]:
    """Full fine-tuning or training from scratch; yields step and epoch events."""
    device = torch_device(config.device)
    rng = PrivateRandom(config.seed, device)
    with rng:  # weight initialisation draws from the run's own stream
        model, spec = _build(report, split, config)
    spec = dataclasses.replace(spec, name=out.stem)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    labels = [label for _, label in split.train]
    balance = class_balance(report, split, config)
    weights = None
    if balance == "weights":
        weights = torch.as_tensor(class_weights(labels, len(report.classes)), dtype=torch.float32)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=LABEL_SMOOTHING).to(device)
    val_loss_fn = nn.CrossEntropyLoss().to(device)
    augment = build_augmentation(config.augment or (), spec, config.seed)
    train_loader = make_loader(
        ImageFolderDataset(split.train, spec, augment, root=report.root),
        config.batch_size,
        shuffle=True,
        seed=config.seed,
        sample_weights=balanced_sample_weights(labels) if balance == "sampler" else None,
    )
    val_loader = make_loader(
        ImageFolderDataset(split.val, spec, root=report.root),
        config.batch_size,
        shuffle=False,
        seed=config.seed,
    )
    micro = MicroBatch()  # parts of a batch the model runs at once, halved on out of memory
    optimizer = _optimizer(model, config)
    steps_per_epoch = max(1, len(train_loader))
    total_steps = steps_per_epoch * config.epochs
    scheduler = warmup_cosine(optimizer, min(steps_per_epoch, total_steps // 10 + 1), total_steps)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
    state: dict[str, Any] = {
        "epoch": 0,
        "history": [],
        "best": None,
        "best_score": -1.0,
        "stale": 0,
    }
    resume_file = checkpoint_path(out)
    if config.resume and resume_file.exists():
        state = _resume(resume_file, report, config, model, optimizer, scheduler)
        yield TrainEvent(
            "checkpoint", epoch=state["epoch"], message=f"Resumed after epoch {state['epoch']}"
        )
    yield TrainEvent(
        "checkpoint",
        message=f"Training {spec.architecture} on {describe_device(device)} "
        f"({spec.input_size[0]}×{spec.input_size[1]}, {spec.channels} channel(s))",
        data={"device": describe_device(device)},
    )
    meter = Throughput()
    cancelled = False
    try:
        for epoch in range(state["epoch"] + 1, config.epochs + 1):
            loss_sum = correct = seen = 0.0
            for report_step in train_epoch(
                model,
                train_loader,
                optimizer,
                scheduler,
                loss_fn,
                device,
                cancel,
                scaler,
                rng,
                micro,
            ):
                for notice in micro.take_notices():
                    yield TrainEvent("notice", epoch=epoch, epochs=config.epochs, message=notice)
                loss_sum += report_step.loss * report_step.images
                correct += report_step.accuracy * report_step.images
                seen += report_step.images
                rate = meter.add(report_step.images)
                done = (epoch - 1 - state["epoch"]) * steps_per_epoch + report_step.step + 1
                todo = (config.epochs - state["epoch"]) * steps_per_epoch
                yield TrainEvent(
                    "step",
                    epoch=epoch,
                    epochs=config.epochs,
                    step=report_step.step + 1,
                    steps=steps_per_epoch,
                    loss=report_step.loss,
                    accuracy=report_step.accuracy,
                    lr=report_step.lr,
                    images_per_s=rate,
                    eta_s=meter.eta(done / todo),
                    fraction=done / todo,
                )
            val_loss, val_accuracy = evaluate_loss(model, val_loader, val_loss_fn, device, micro)
            for notice in micro.take_notices():
                yield TrainEvent("notice", epoch=epoch, epochs=config.epochs, message=notice)
            record = {
                "epoch": epoch,
                "loss": loss_sum / max(1, seen),
                "accuracy": correct / max(1, seen),
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "lr": optimizer.param_groups[-1]["lr"],
            }
            state["history"].append(record)
            score = val_accuracy if not math.isnan(val_accuracy) else record["accuracy"]
            improved = score > state["best_score"]
            if improved:
                state["best"], state["best_score"], state["stale"] = state_copy(model), score, 0
            else:
                state["stale"] += 1
            state["epoch"] = epoch
            save_checkpoint(
                resume_file, _checkpoint(state, report, config, model, optimizer, scheduler)
            )
            yield TrainEvent(
                "epoch",
                epoch=epoch,
                epochs=config.epochs,
                loss=record["loss"],
                accuracy=record["accuracy"],
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                lr=record["lr"],
                images_per_s=meter.add(0),
                fraction=epoch / config.epochs,
                message="best so far" if improved else "",
            )
            if state["stale"] >= config.patience:
                break
    except Cancelled:
        if state["best"] is None:
            raise
        cancelled = True
    except TrainRunError as exc:  # out of memory at batch size 1, the images gone
        raise TrainRunError(f"{exc}{_kept(resume_file, state)}") from None
    if not report.root.is_dir():  # deleted after the last epoch: the export cannot be checked
        raise TrainRunError(vanished_message(report.root, report.root) + _kept(resume_file, state))
    model.load_state_dict(state["best"])
    training = {
        "mode": config.mode,
        "architecture": config.arch,
        "device": describe_device(device),
        "best_val_accuracy": state["best_score"],
        "epochs_run": state["epoch"],
        "images_per_s": round(meter.add(0), 2),
        "seconds": round(time.monotonic() - started, 2),
        "train_images": len(split.train),
        "val_images": len(split.val),
    }
    if micro.size is not None:
        training["images_per_forward_pass"] = micro.size  # after running out of memory
    # Calibrate on the validation logits; the export divides the logits by T before its softmax.
    yield TrainEvent("export", message="Fitting the unknown detector…", fraction=0.0)
    classes = len(report.classes)
    val_features, val_logits, val_labels = _embeddings_and_logits(
        model, val_loader, device, micro, classes
    )
    calibration = calibrate(val_logits, val_labels)
    spec = dataclasses.replace(spec, temperature=calibration["temperature"])
    train_images = ImageFolderDataset(split.train, spec, root=report.root)  # not augmented
    unaugmented = make_loader(train_images, config.batch_size, shuffle=False, seed=config.seed)
    train_features, _, train_labels = _embeddings_and_logits(
        model, unaugmented, device, micro, classes
    )
    yield TrainEvent("export", message="Exporting the model to ONNX…", fraction=0.0)
    model = model.cpu().eval()
    proto, spec = export_onnx(model, spec, visualisable_layers(model))
    unknown = fit_unknown_detector(
        train_features,
        train_labels,
        softmax(val_logits, spec.temperature),
        val_features,
        config.seed,
    )
    if unknown[0] is not None and unknown[0].width != embedding_width(proto):
        reason = "the exported graph's embedding is not the last linear layer's input"
        unknown = (None, {"method": None, "reason": reason})
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}

    def reference(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = model(torch.from_numpy(batch)).float()
            return (logits / spec.temperature).softmax(-1).numpy()

    yield from finish(
        reference,
        spec,
        proto,
        weights,
        report,
        split,
        out,
        config,
        state["history"],
        cancelled=cancelled,
        training=training,
        calibration=calibration,
        unknown=unknown,
    )
    if not cancelled:
        resume_file.unlink(missing_ok=True)


class _WithEmbeddings(nn.Module):
    """A classifier whose output is its logits followed by its embedding, the input of its
    last linear layer (the tensor the exported graph's final ``Gemm`` takes)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        hook = self.last.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        try:
            logits = self.model(x).float()
        finally:
            hook.remove()
        return torch.cat([logits, seen[-1].flatten(1).float()], dim=1)


def _embeddings_and_logits(
    model: nn.Module, loader: Any, device: torch.device, micro: MicroBatch, classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings ``[N, D]``, raw logits ``[N, classes]`` and labels of a loader's images,
    in one pass (out of memory halves the part sizes, as in evaluation)."""
    joined, labels = validation_logits(_WithEmbeddings(model), loader, device, micro)
    if not len(labels):
        return np.zeros((0, 0), np.float32), np.zeros((0, classes), np.float32), labels
    return joined[:, classes:], joined[:, :classes], labels


def _kept(resume_file: Path, state: dict[str, Any]) -> str:
    """What a failed run kept: its checkpoint, if an epoch ended (the model at the output
    is untouched, since nothing is saved)."""
    if not state["epoch"] or not resume_file.exists():
        return "; no epoch had ended, nothing was saved"
    return (
        f"; the run after epoch {state['epoch']} (with its best model) is kept in "
        f"{resume_file}: fix the cause and train again with --resume to continue it"
    )


def _checkpoint(state, report, config, model, optimizer, scheduler) -> dict[str, Any]:
    return {
        "classes": list(report.classes),
        "mode": config.mode,
        "arch": config.arch,
        "epoch": state["epoch"],
        "history": state["history"],
        "best": state["best"],
        "best_score": state["best_score"],
        "stale": state["stale"],
        "model": state_copy(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }


def _resume(path, report, config, model, optimizer, scheduler) -> dict[str, Any]:
    saved = load_checkpoint(path)
    if saved["classes"] != list(report.classes) or (saved["mode"], saved["arch"]) != (
        config.mode,
        config.arch,
    ):
        raise TrainError(
            f"the checkpoint {path.name} is for another run (different classes, mode or "
            "architecture); delete it or train without --resume"
        )
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    return {k: saved[k] for k in ("epoch", "history", "best", "best_score", "stale")}
