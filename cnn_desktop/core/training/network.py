"""Training a whole network: full fine-tuning of the built-in EfficientNet-Lite0, or a classic
architecture from scratch sized to the user's images (imports torch)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from cnn_desktop.core.inference.backends.torch import describe_device, torch_device
from cnn_desktop.core.models.pretrained import default_spec, load_pretrained_model
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.models.torch_random import PrivateRandom
from cnn_desktop.core.models.zoo import build_model, choose_input
from cnn_desktop.core.tasks import Cancelled, CancelToken
from cnn_desktop.core.training.augment import build_augmentation
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
from cnn_desktop.core.training.distributed import Group, join
from cnn_desktop.core.training.launch import check_distributed
from cnn_desktop.core.training.loop import (
    ImageFolderDataset,
    MicroBatch,
    Throughput,
    evaluate_loss,
    evaluate_sums,
    load_checkpoint,
    make_loader,
    save_checkpoint,
    state_copy,
    train_epoch,
    warmup_cosine,
)
from cnn_desktop.core.training.network_export import export_trained
from cnn_desktop.core.training.placement import checkpoint_path
from cnn_desktop.core.training.splits import Split, balanced_sample_weights, class_weights


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
    """Full fine-tuning or training from scratch; yields step and epoch events.

    Under ``torchrun`` the processes train data-parallel (see
    :mod:`cnn_desktop.core.training.distributed`): each yields its own step events and the
    same epoch events; rank 0 alone writes the checkpoint and, once the others have left,
    exports and saves the model and yields ``done``; the other ranks end without it."""
    # Under torchrun: join the process group (left when the run ends, however it ends).
    with contextlib.closing(join(torch_device(config.device))) as group:
        if group.launch is not None:
            check_distributed(config)
        device = group.device
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
            weights = torch.as_tensor(
                class_weights(labels, len(report.classes)), dtype=torch.float32
            )
        loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=LABEL_SMOOTHING).to(device)
        val_loss_fn = nn.CrossEntropyLoss().to(device)
        # Each rank draws its own augmentations (its images differ from the other ranks' anyway).
        augment = build_augmentation(config.augment or (), spec, config.seed + group.rank)
        train_loader = make_loader(
            ImageFolderDataset(split.train, spec, augment, root=report.root),
            config.batch_size,
            shuffle=True,
            seed=config.seed,
            sample_weights=balanced_sample_weights(labels) if balance == "sampler" else None,
            sampler=group.sampler(len(split.train), config.seed),
        )
        val_loader = make_loader(
            ImageFolderDataset(group.share(split.val), spec, root=report.root),
            config.batch_size,
            shuffle=False,
            seed=config.seed,
        )
        trained = group.wrap(model)  # DDP under torchrun; ``model`` itself for one process
        net = getattr(trained, "module", trained)  # the weights trained (no DDP prefix)
        micro = MicroBatch()  # parts of a batch the model runs at once, halved on out of memory
        optimizer = _optimizer(net, config)
        steps_per_epoch = max(1, len(train_loader))  # per process: fewer with more of them
        total_steps = steps_per_epoch * config.epochs
        scheduler = warmup_cosine(
            optimizer, min(steps_per_epoch, total_steps // 10 + 1), total_steps
        )
        scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
        state: dict[str, Any] = {
            "epoch": 0,
            "history": [],
            "best": None,
            "best_score": -1.0,
            "stale": 0,
        }
        resume_file = checkpoint_path(out)
        if config.resume:  # rank 0's checkpoint (the other machines may not see its file)
            mine = group.is_main and resume_file.exists()
            saved = group.from_main(load_checkpoint(resume_file) if mine else None)
            if saved is not None:
                state = _resume(saved, resume_file, report, config, net, optimizer, scheduler)
                yield TrainEvent(
                    "checkpoint",
                    epoch=state["epoch"],
                    message=f"Resumed after epoch {state['epoch']}",
                )
        processes = f" × {group.world_size} processes" if group.launch else ""
        yield TrainEvent(
            "checkpoint",
            message=f"Training {spec.architecture} on {describe_device(device)}{processes} "
            f"({spec.input_size[0]}×{spec.input_size[1]}, {spec.channels} channel(s))",
            data={"device": describe_device(device)},
        )
        meter = Throughput()
        cancelled = False
        try:
            for epoch in range(state["epoch"] + 1, config.epochs + 1):
                if isinstance(train_loader.sampler, DistributedSampler):
                    train_loader.sampler.set_epoch(epoch)
                loss_sum = correct = seen = 0.0
                for report_step in train_epoch(
                    trained,
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
                        yield TrainEvent(
                            "notice", epoch=epoch, epochs=config.epochs, message=notice
                        )
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
                figures = _epoch_figures(
                    group, net, val_loader, val_loss_fn, device, micro, (loss_sum, correct, seen)
                )
                for notice in micro.take_notices():
                    yield TrainEvent("notice", epoch=epoch, epochs=config.epochs, message=notice)
                record = {"epoch": epoch, **figures, "lr": optimizer.param_groups[-1]["lr"]}
                state["history"].append(record)
                # Every rank has the same (all-reduced) figures, so takes the same decisions.
                val_accuracy = record["val_accuracy"]
                score = val_accuracy if not math.isnan(val_accuracy) else record["accuracy"]
                improved = score > state["best_score"]
                if improved:
                    state["best"], state["best_score"], state["stale"] = state_copy(net), score, 0
                else:
                    state["stale"] += 1
                state["epoch"] = epoch
                if group.is_main:
                    save_checkpoint(
                        resume_file, _checkpoint(state, report, config, net, optimizer, scheduler)
                    )
                yield TrainEvent(
                    "epoch",
                    epoch=epoch,
                    epochs=config.epochs,
                    loss=record["loss"],
                    accuracy=record["accuracy"],
                    val_loss=record["val_loss"],
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
        # The other ranks leave once every rank has trained (and rank 0 saved its checkpoint);
        # rank 0 then calibrates, exports and saves alone, with no collective left to time out.
        group.barrier()
        group.close()
        if not group.is_main:
            return
        if not report.root.is_dir():  # deleted after the last epoch: the export cannot be checked
            raise TrainRunError(
                vanished_message(report.root, report.root) + _kept(resume_file, state)
            )
        model.load_state_dict(state["best"])
        training = {
            "mode": config.mode,
            "architecture": config.arch,
            "device": describe_device(device),
            "best_val_accuracy": state["best_score"],
            "epochs_run": state["epoch"],
            "images_per_s": round(meter.add(0), 2),  # under torchrun: rank 0's
            "seconds": round(time.monotonic() - started, 2),
            "train_images": len(split.train),
            "val_images": len(split.val),
        }
        if group.launch is not None:
            training["batch_size_per_process"] = config.batch_size
        if micro.size is not None:
            training["images_per_forward_pass"] = micro.size  # after running out of memory
        yield from export_trained(
            model,
            spec,
            report,
            split,
            out,
            config,
            state["history"],
            device=device,
            micro=micro,
            cancelled=cancelled,
            training=training,
            world_size=group.world_size,
        )
        if not cancelled:
            resume_file.unlink(missing_ok=True)


def _epoch_figures(
    group: Group,
    net: nn.Module,
    val_loader: Any,
    val_loss_fn: nn.Module,
    device: torch.device,
    micro: MicroBatch,
    train_sums: tuple[float, float, float],
) -> dict[str, float]:
    """An epoch's training and validation loss and accuracy; under ``torchrun``, from the
    sums over every rank's images (each validates its own slice of the validation split)."""
    loss_sum, correct, seen = train_sums
    if group.launch is None:
        val_loss, val_accuracy = evaluate_loss(net, val_loader, val_loss_fn, device, micro)
    else:
        sums = evaluate_sums(net, val_loader, val_loss_fn, device, micro)
        loss_sum, correct, seen, val_sum, val_correct, val_seen = group.sum(
            [loss_sum, correct, seen, *sums]
        )
        val_loss = val_sum / val_seen if val_seen else math.nan
        val_accuracy = val_correct / val_seen if val_seen else math.nan
    return {
        "loss": loss_sum / max(1, seen),
        "accuracy": correct / max(1, seen),
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
    }


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


def _resume(saved, path, report, config, model, optimizer, scheduler) -> dict[str, Any]:
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
