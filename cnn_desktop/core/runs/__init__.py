"""Every training run recorded: the local run store, training with the run recorded (and
mirrored to MLflow when a tracking store is named), comparing runs and repeating one."""

from cnn_desktop.core.runs.actions import delete_run_bundle, rerun_output
from cnn_desktop.core.runs.compare import compare_runs, run_summary, value_text
from cnn_desktop.core.runs.recorder import (
    DataChangedError,
    config_from_record,
    recorded_train,
    versions,
)
from cnn_desktop.core.runs.store import RunStore, RunStoreError, default_store_dir
from cnn_desktop.core.runs.sweep import (
    SWEEPABLE,
    SweepError,
    SweepResult,
    TrialOutcome,
    parse_params,
    run_sweep,
    search_space,
)
from cnn_desktop.core.runs.tracking import tracking_uri_from_env

__all__ = [
    "SWEEPABLE",
    "DataChangedError",
    "RunStore",
    "RunStoreError",
    "SweepError",
    "SweepResult",
    "TrialOutcome",
    "compare_runs",
    "config_from_record",
    "default_store_dir",
    "delete_run_bundle",
    "parse_params",
    "recorded_train",
    "rerun_output",
    "run_summary",
    "run_sweep",
    "search_space",
    "tracking_uri_from_env",
    "value_text",
    "versions",
]
