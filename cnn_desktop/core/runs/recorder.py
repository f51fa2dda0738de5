"""Training with the run recorded: :func:`recorded_train` is :func:`train` plus a run record
in the local store (and an MLflow run when a tracking store is named).

The record is written when the data set's scan is done (a run that cannot start leaves none),
again after every epoch (an interrupted run keeps its history), and at the end with the
status, the final metrics and where the model went. A store or a tracking server that cannot
be written never stops training: the run goes on and a ``notice`` event says what was lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cnn_desktop.core.runs.fingerprint import FileRow, data_fingerprint, describe_changes
from cnn_desktop.core.runs.store import FORMAT_VERSION, RunStore, RunStoreError, new_run_id
from cnn_desktop.core.runs.tracking import MlflowSink
from cnn_desktop.core.tasks import Cancelled, CancelToken
from cnn_desktop.core.training import TrainConfig, TrainEvent, TrainResult, train
from cnn_desktop.core.versions import installed_version

_HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")


class DataChangedError(RuntimeError):
    """A re-run's data set is not the one the run was trained on; the message says how."""


def recorded_train(
    data_dir: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    cancel: CancelToken | None = None,
    store: RunStore | None = None,
    tags: Mapping[str, str] | None = None,
    tracking_uri: str | None = None,
    rerun_of: dict[str, Any] | None = None,
) -> Iterator[TrainEvent]:
    """:func:`cnn_desktop.core.training.train`, recorded.

    Args:
        tags: Extra labels of the run (``sweep``, ``trial`` …).
        tracking_uri: An MLflow tracking store (``sqlite:///…``, ``http://host:5000``); None
            reads ``MLFLOW_TRACKING_URI`` and, when that is unset too, records locally only.
        rerun_of: The record this run repeats: its data must have the same fingerprint.

    Raises:
        DataChangedError: ``rerun_of``'s data set has changed (nothing is trained).
        And whatever :func:`train` raises; the record then says ``failed``.
    """
    config = (config or TrainConfig()).resolved()
    if rank() != 0:  # torchrun: rank 0 alone records the run
        yield from train(data_dir, out, config, cancel=cancel)
        return
    store = store or RunStore()
    record = _new_record(data_dir, out, config, tags, rerun_of)
    sink = MlflowSink.for_uri(tracking_uri)
    writer = _Writer(store, sink)
    started = time.monotonic()
    events = train(data_dir, out, config, cancel=cancel)
    try:
        for event in events:
            if event.kind == "scan":
                block, files = data_fingerprint(event.data["report"], event.data["split"])
                if rerun_of is not None:
                    _check_same_data(store, rerun_of, block, files)
                record["data"] = block
                yield event
                yield from writer.start(record, files)
                yield from _version_notices(rerun_of, record)
                continue
            if device := event.data.get("device"):
                record["device"] = str(device)
            if event.kind == "epoch":
                row = {"epoch": event.epoch} | {
                    k: _number(getattr(event, k)) for k in _HISTORY_KEYS
                }
                record["history"].append(row)
                yield event
                yield from writer.epoch(record, row)
                continue
            if event.kind in ("done", "cancelled") and event.result is not None:
                _finish(
                    record, event.result, "cancelled" if event.kind == "cancelled" else "finished"
                )
                record["duration_s"] = round(time.monotonic() - started, 2)
                yield from writer.end(record, event.result.bundle.path)
                yield from _device_notice(rerun_of, record)
                if writer.store_ok:
                    event.data["run_id"] = record["id"]
            yield event
    except (Cancelled, KeyboardInterrupt, GeneratorExit):
        if record["status"] == "running":
            done = len(record["history"])
            why = f"stopped after epoch {done}" if done else "stopped before any epoch finished"
            _end_early(record, "cancelled", f"{why}; no model was saved", started)
            _drain(writer.end(record, None))
        raise
    except DataChangedError:
        raise
    except BaseException as exc:
        if record["status"] == "running":
            _end_early(record, "failed", f"{type(exc).__name__}: {exc}", started)
            _drain(writer.end(record, None))
        raise
    finally:
        events.close()


def record_config(config: TrainConfig) -> dict[str, Any]:
    """The config as plain JSON (the augmentations as a list)."""
    values = dataclasses.asdict(config)
    values["augment"] = list(config.augment or ())
    return values


def config_from_record(record: Mapping[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` a record was trained with (``resume`` off)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in (record.get("config") or {}).items() if k in fields}
    if values.get("augment") is not None:
        values["augment"] = tuple(values["augment"])
    return TrainConfig(**{**values, "resume": False})


def rank() -> int:
    """This process's rank under ``torchrun`` (0 otherwise)."""
    try:
        return int(os.environ.get("RANK") or 0)
    except ValueError:
        return 0


def versions() -> dict[str, str | None]:
    """The versions a run records (found without importing torch)."""
    from cnn_desktop import __version__

    return {
        "cnn_desktop": __version__,
        "python": platform.python_version(),
        "torch": installed_version("torch", "torch"),
        "onnxruntime": installed_version("onnxruntime", "onnxruntime"),
        "numpy": installed_version("numpy", "numpy"),
        "platform": f"{platform.system()} {platform.machine()}",
    }


class _Writer:
    """Writes the record to the store and the sink; a failure becomes one notice, once."""

    def __init__(self, store: RunStore, sink: MlflowSink | None) -> None:
        self.store, self.sink = store, sink
        self.store_ok = True
        self.started = False  # nothing is written before the scan is done

    def start(self, record: dict[str, Any], files: list[FileRow]) -> Iterator[TrainEvent]:
        self.started = True
        yield from self._save(record)
        if self.store_ok:  # without the listing a re-run names no changed files, only the fact
            with contextlib.suppress(RunStoreError):
                self.store.write_files(record["id"], files)
        if self.sink is not None:
            self.sink.start(record)
            record["tracking"] = self.sink.describe()
        yield from self._save(record)
        yield from self._sink_notice()

    def epoch(self, record: dict[str, Any], row: dict[str, Any]) -> Iterator[TrainEvent]:
        yield from self._save(record)
        if self.sink is not None:
            self.sink.epoch(row)
            yield from self._sink_notice()

    def end(self, record: dict[str, Any], bundle: Path | None) -> Iterator[TrainEvent]:
        if self.sink is not None and self.started:
            self.sink.end(record, bundle)
            record["tracking"] = self.sink.describe()
        yield from self._save(record)
        yield from self._sink_notice()

    def _save(self, record: dict[str, Any]) -> Iterator[TrainEvent]:
        if not self.store_ok or not self.started:
            return
        try:
            self.store.write(record)
        except RunStoreError as exc:
            self.store_ok = False
            yield TrainEvent("notice", message=f"this run is not recorded: {exc}")

    def _sink_notice(self) -> Iterator[TrainEvent]:
        if self.sink is not None and (message := self.sink.take_notice()):
            yield TrainEvent("notice", message=message)


def _new_record(
    data_dir: str | Path,
    out: str | Path,
    config: TrainConfig,
    tags: Mapping[str, str] | None,
    rerun_of: dict[str, Any] | None,
) -> dict[str, Any]:
    tags = dict(tags or {})
    if rerun_of is not None:
        tags["rerun_of"] = rerun_of["id"]
    return {
        "format_version": FORMAT_VERSION,
        "id": new_run_id(),
        "status": "running",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ended_at": None,
        "duration_s": None,
        "data": {"folder": str(Path(data_dir).resolve())},
        "out": str(Path(out).resolve()),
        "bundle": None,
        "config": record_config(config),
        "tags": tags,
        "versions": versions(),
        "device": None,
        "world_size": int(os.environ.get("WORLD_SIZE") or 1),
        "command": sys.argv[1:],
        "history": [],
        "metrics": {},
        "error": None,
        "tracking": None,
    }


def _check_same_data(
    store: RunStore, original: dict[str, Any], block: dict[str, Any], files: list[FileRow]
) -> None:
    recorded = original.get("data") or {}
    changes = describe_changes(recorded, block, store.read_files(original["id"]), files)
    if changes:
        raise DataChangedError(
            f"the data in {block['folder']} has changed since run {original['id']}: {changes}; "
            "a re-run needs the same data (train it as a new run instead)"
        )


def _version_notices(
    original: dict[str, Any] | None, record: dict[str, Any]
) -> Iterator[TrainEvent]:
    """A re-run with other versions than its original: one notice per difference."""
    recorded = (original or {}).get("versions") or {}
    for key, now in record["versions"].items():
        if key in recorded and recorded[key] != now:
            yield TrainEvent(
                "notice",
                message=f"{key} was {recorded[key]} for run {original['id']} and is {now} now: "
                "the figures can differ",
            )


def _device_notice(original: dict[str, Any] | None, record: dict[str, Any]) -> Iterator[TrainEvent]:
    if original and original.get("device") and record.get("device") != original["device"]:
        yield TrainEvent(
            "notice",
            message=f"run {original['id']} trained on {original['device']}, this one on "
            f"{record.get('device')}: the figures can differ",
        )


def _finish(record: dict[str, Any], result: TrainResult, status: str) -> None:
    metrics = result.metrics
    training = metrics.get("training") or {}
    evaluation = metrics.get("evaluation") or {}
    calibration = metrics.get("calibration") or {}
    record["history"] = [dict(row) for row in result.history] or record["history"]
    record["metrics"] = {
        "val_accuracy": training.get("best_val_accuracy"),
        "epochs_run": training.get("epochs_run"),
        "train_seconds": training.get("seconds"),
        "evaluation_set": metrics.get("evaluation_set"),
        "evaluation_accuracy": evaluation.get("accuracy"),
        "temperature": calibration.get("temperature"),
        "ece": calibration.get("ece_after"),
        "unknown_keep_rate": (metrics.get("unknown") or {}).get("validation_keep_rate"),
        "export_verified": result.export_verified,
    }
    record["world_size"] = metrics.get("world_size", record["world_size"])
    record["bundle"] = str(result.bundle.path)
    record["placement"] = result.placement()
    record["status"] = status
    record["ended_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _end_early(record: dict[str, Any], status: str, error: str, started: float) -> None:
    record["status"] = status
    record["error"] = error[:2000]
    record["ended_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record["duration_s"] = round(time.monotonic() - started, 2)


def _drain(events: Iterator[TrainEvent]) -> None:
    for _ in events:
        pass  # notices have no one to reach: the run is ending with an exception


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
