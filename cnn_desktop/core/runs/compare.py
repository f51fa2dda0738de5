"""What differs between runs: config, data, versions and device, and their results side by
side; and the short summary ``runs list`` shows of each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

RESULTS = (
    "val_accuracy",
    "evaluation_accuracy",
    "epochs_run",
    "train_seconds",
    "ece",
    "temperature",
    "unknown_keep_rate",
    "export_verified",
)


def compare_runs(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The differences of two or more runs.

    Returns:
        ``{"runs": [ids], "config": {key: [value per run]}, "data": {...}, "environment":
        {...}, "results": {metric: [value per run]}}``: config, data and environment keys only
        where the runs differ; every result, so the figures can be read side by side.
    """

    def column(getter: Any) -> list[Any]:
        return [getter(record) for record in records]

    config_keys = sorted({key for record in records for key in (record.get("config") or {})})
    config = {k: column(lambda r, k=k: (r.get("config") or {}).get(k)) for k in config_keys}
    data = {
        "folder": column(lambda r: (r.get("data") or {}).get("folder")),
        "fingerprint": column(lambda r: (r.get("data") or {}).get("fingerprint")),
        "images": column(lambda r: (r.get("data") or {}).get("images")),
    }
    version_keys = sorted({k for r in records for k in (r.get("versions") or {})})
    environment = {
        "device": column(lambda r: r.get("device")),
        "world_size": column(lambda r: r.get("world_size")),
        **{
            f"version.{k}": column(lambda r, k=k: (r.get("versions") or {}).get(k))
            for k in version_keys
        },
    }
    results = {
        "status": column(lambda r: r.get("status")),
        **{k: column(lambda r, k=k: (r.get("metrics") or {}).get(k)) for k in RESULTS},
        "duration_s": column(lambda r: r.get("duration_s")),
    }
    return {
        "runs": column(lambda r: r["id"]),
        "config": _differing(config),
        "data": _differing(data),
        "environment": _differing(environment),
        "results": results,
    }


def run_summary(record: dict[str, Any]) -> dict[str, Any]:
    """One row of ``runs list``: id, status, data folder, mode, arch, key params, validation
    accuracy, duration, bundle."""
    config = record.get("config") or {}
    metrics = record.get("metrics") or {}
    return {
        "id": record["id"],
        "status": record.get("status"),
        "started_at": record.get("started_at"),
        "data": (record.get("data") or {}).get("folder"),
        "mode": config.get("mode"),
        "arch": config.get("arch"),
        "params": {k: config.get(k) for k in ("epochs", "lr", "batch_size", "seed", "augment")},
        "val_accuracy": metrics.get("val_accuracy"),
        "duration_s": record.get("duration_s"),
        "bundle": record.get("bundle"),
        "tags": record.get("tags") or {},
    }


def value_text(value: Any, list_separator: str = ",") -> str:
    """A config or result value as a compared run shows it: ``-`` for none, four significant
    digits for a float, a list joined (``none`` when empty)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return list_separator.join(map(str, value)) or "none"
    return str(value)


def _differing(columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    return {k: values for k, values in columns.items() if any(v != values[0] for v in values)}
