"""Runs as MLflow runs, for a team's tracking server or a local MLflow store.

When a tracking store is named (``--tracking-uri``, the window's setting, or MLflow's own
``MLFLOW_TRACKING_URI``), each run becomes an MLflow run of the experiment ``cnn-desktop``:
its params (mode, arch, lr, epochs, batch size, seed, augmentations …), one metric point per
epoch (train and validation loss and accuracy, learning rate), tags (data fingerprint and
folder, versions, device, the cnn-desktop run id) and the bundle's files as the ``model``
artifact. MLflow's own client and UI then see everything.

A server that cannot be reached never stops training: the first failure turns the sink off,
the run is kept in the local store, and one notice says so. MLflow is imported only when a
store is named (it takes seconds); a build without it says so in the same way.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

EXPERIMENT = "cnn-desktop"
PARAMS = (
    "mode",
    "arch",
    "lr",
    "epochs",
    "batch_size",
    "seed",
    "augment",
    "val_split",
    "img_size",
    "patience",
    "balance",
    "device",
)
_STATUS = {"finished": "FINISHED", "cancelled": "KILLED", "failed": "FAILED"}
# MLflow retries an unreachable server for minutes by default; a training run waits at most
# about half a minute before it goes on without it (the user's own settings win).
_QUICK_FAILURE = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def tracking_uri_from_env(uri: str | None = None) -> str | None:
    """``uri``, else ``MLFLOW_TRACKING_URI``, else None (local records only)."""
    return (uri or os.environ.get("MLFLOW_TRACKING_URI") or "").strip() or None


class MlflowSink:
    """One cnn-desktop run mirrored as one MLflow run."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.failure: str | None = None
        self._notice: str | None = None
        self._client: Any = None

    @classmethod
    def for_uri(cls, uri: str | None) -> MlflowSink | None:
        """A sink for ``uri`` (or ``MLFLOW_TRACKING_URI``), None when neither names a store."""
        uri = tracking_uri_from_env(uri)
        return cls(uri) if uri else None

    def describe(self) -> dict[str, Any]:
        """The record's ``tracking`` block: where the run went, or why it did not."""
        return {
            "uri": _without_password(self.uri),
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
            "error": self.failure,
        }

    def take_notice(self) -> str | None:
        """The one sentence the user should read about tracking, once."""
        notice, self._notice = self._notice, None
        return notice

    def start(self, record: dict[str, Any]) -> None:
        """Create the MLflow run with its params and tags."""
        self._try(self._start, record)

    def epoch(self, row: dict[str, Any]) -> None:
        """Log one epoch's figures at step ``row["epoch"]``."""
        self._try(self._log_metrics, row, int(row["epoch"]))

    def end(self, record: dict[str, Any], bundle: Path | None) -> None:
        """Log the final metrics and the bundle, and close the run with its status."""
        self._try(self._end, record, bundle)

    def _try(self, action: Any, *args: Any) -> None:
        if self.failure is not None or (self.run_id is None and action != self._start):
            return
        try:
            action(*args)
        except ImportError:
            self._fail("MLflow is not installed in this build of cnn-desktop")
        except Exception as exc:  # MLflow raises its own, requests' and SQLAlchemy's errors
            self._fail(f"the tracking store cannot be reached ({_first_line(exc)})")

    def _fail(self, why: str) -> None:
        self.failure = why
        self._notice = (
            f"{why}: this run is recorded locally only "
            f"(tracking store {_without_password(self.uri)})"
        )

    def _start(self, record: dict[str, Any]) -> None:
        for name, value in _QUICK_FAILURE.items():
            os.environ.setdefault(name, value)
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        self._client = client = MlflowClient(tracking_uri=self.uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            self.experiment_id = experiment.experiment_id
        else:
            self.experiment_id = client.create_experiment(
                EXPERIMENT, artifact_location=_local_artifacts(self.uri)
            )
        run = client.create_run(self.experiment_id, run_name=record["id"])
        self.run_id = run.info.run_id
        config = record["config"]
        params = [Param(key, _text(config.get(key))) for key in PARAMS if key in config]
        client.log_batch(self.run_id, params=params, tags=[RunTag(k, v) for k, v in _tags(record)])

    def _log_metrics(self, values: dict[str, Any], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, step)
            for key, value in values.items()
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        if metrics:
            self._client.log_batch(self.run_id, metrics=metrics)

    def _end(self, record: dict[str, Any], bundle: Path | None) -> None:
        final = {f"final_{k}": v for k, v in (record.get("metrics") or {}).items()}
        self._log_metrics(final, len(record.get("history") or ()))
        if bundle is not None and Path(bundle).is_dir():
            self._client.log_artifacts(self.run_id, str(bundle), artifact_path="model")
        if record.get("error"):
            self._client.set_tag(self.run_id, "error", record["error"][:5000])
        self._client.set_terminated(self.run_id, _STATUS.get(record["status"], "FAILED"))


def _tags(record: dict[str, Any]) -> list[tuple[str, str]]:
    data = record.get("data") or {}
    tags = {
        "cnn_desktop.run_id": record["id"],
        "data_fingerprint": data.get("fingerprint"),
        "data_folder": data.get("folder"),
        "images": data.get("images"),
        "device": record.get("device"),
        "world_size": record.get("world_size"),
        **{f"version.{k}": v for k, v in (record.get("versions") or {}).items()},
        **(record.get("tags") or {}),
    }
    return [(key, _text(value)) for key, value in tags.items() if value is not None]


def _local_artifacts(uri: str) -> str | None:
    """Beside a local SQLite store, ``mlartifacts/`` (MLflow's default is the working folder)."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite" or not parsed.path.strip("/"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    database = database if database.is_absolute() else Path.cwd() / database
    return (database.parent / "mlartifacts").resolve().as_uri()


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    return str(value)[:5000]


def _without_password(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(f":{parsed.password}@", ":***@")
    return uri


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
