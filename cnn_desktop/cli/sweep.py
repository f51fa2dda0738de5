"""``cnn-desktop sweep``: hyperparameter search with Optuna, every trial a recorded run."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from cnn_desktop.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    first_ctrl_c_cancels,
    warning_line,
)

SWEEP_HELP = (
    "try --trials configs (Optuna TPE, median pruning on validation accuracy) and keep the "
    "best model at --out"
)


def add_sweep_parser(commands: argparse._SubParsersAction, tracking_help: str) -> None:
    """The ``sweep`` subcommand's arguments."""
    sweep = commands.add_parser("sweep", help=SWEEP_HELP)
    sweep.add_argument("data_dir", help="a folder with one sub-folder of images per class")
    sweep.add_argument("--out", required=True, help="where the best model goes (NAME.cnnmodel)")
    sweep.add_argument("--mode", choices=("head", "full", "scratch"), default="head")
    sweep.add_argument("--arch", help="scratch: lenet5, alexnet, vgg11, googlenet, resnet18, …")
    sweep.add_argument("--trials", type=int, required=True, help="trials of the study in all")
    sweep.add_argument(
        "--params",
        help="what to vary, comma list of lr, epochs, batch_size, augment, patience "
        "(default: lr,epochs,batch_size,augment)",
    )
    sweep.add_argument(
        "--storage",
        help="share the study: an Optuna database URL (sqlite:///sweep.db, postgresql://…) or "
        "a journal file path that every process can reach (default: this process only)",
    )
    sweep.add_argument("--study", help="the study's name (default: DATA-MODE-ARCH)")
    sweep.add_argument("--seed", type=int, default=0)
    sweep.add_argument("--val-split", type=float, default=0.2)
    sweep.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    sweep.add_argument("--tracking-uri", metavar="URI", help=tracking_help)
    sweep.add_argument("--format", choices=("table", "json"), default="table")
    sweep.add_argument("--quiet", action="store_true", help="no line per trial")


def run_sweep_command(args: argparse.Namespace) -> int:
    """Run the sweep; print a line per trial (stderr) and the summary (stdout)."""
    from cnn_desktop.core.runs import SweepError, parse_params, run_sweep
    from cnn_desktop.core.tasks import CancelToken
    from cnn_desktop.core.training import DatasetError, TrainConfig, TrainError

    try:
        params = parse_params(args.params)
        base = TrainConfig(
            mode=args.mode,
            arch=args.arch,
            seed=args.seed,
            val_split=args.val_split,
            device=args.device,
        ).resolved()
    except (SweepError, TrainError) as exc:
        return fail(str(exc), EXIT_USAGE)
    cancel = CancelToken()
    stopping = "Stopping the sweep; finished trials and the best model are kept…"
    try:
        with first_ctrl_c_cancels(cancel, stopping):
            result = run_sweep(
                args.data_dir,
                args.out,
                base,
                args.trials,
                params,
                storage=args.storage,
                study_name=args.study,
                tracking_uri=args.tracking_uri,
                on_event=None if args.quiet else _TrialLines().show,
                cancel=cancel,
            )
    except (SweepError, TrainError, DatasetError) as exc:
        return fail(str(exc), EXIT_USAGE)
    if args.format == "json":
        print(json.dumps(_as_json(result), ensure_ascii=False))
    else:
        print(_summary(result))
    if result.best is None:
        return fail(
            "no trial finished; no model was kept", EXIT_INTERRUPTED if result.interrupted else 1
        )
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


class _TrialLines:
    """One stderr line when a trial starts and one when it ends."""

    def __init__(self) -> None:
        self.best: float | None = None

    def show(self, number: int, event: Any) -> None:
        if event.kind == "scan":
            print(f"trial {number}: started", file=sys.stderr)
        elif event.kind == "notice":
            print(warning_line(f"trial {number}: {event.message}"), file=sys.stderr)
        elif event.kind in ("done", "cancelled") and event.result is not None:
            value = event.result.metrics.get("training", {}).get("best_val_accuracy")
            how = "stopped" if event.kind == "cancelled" else "finished"
            print(f"trial {number}: {how}, val acc {_percent(value)}", file=sys.stderr)


def _as_json(result: Any) -> dict[str, Any]:
    return {
        "study": result.study,
        "out": str(result.out) if result.best else None,
        "interrupted": result.interrupted,
        "space": result.space,
        "best": _trial_json(result.best) if result.best else None,
        "trials": [_trial_json(trial) for trial in result.trials],
    }


def _trial_json(trial: Any) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state,
        "params": trial.params,
        "val_accuracy": trial.value,
        "run": trial.run_id,
        "error": trial.error,
    }


def _summary(result: Any) -> str:
    names = list(result.space)
    rows = [("TRIAL", "STATE", *(n.upper() for n in names), "VAL ACC", "RUN")]
    for trial in result.trials:
        mark = " *" if result.best and trial.number == result.best.number else ""
        rows.append(
            (
                f"{trial.number}{mark}",
                trial.state + (f" ({trial.error[:60]})" if trial.error else ""),
                *(_value(trial.params.get(n)) for n in names),
                _percent(trial.value),
                trial.run_id or "-",
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if result.best:
        lines.append(
            f"Best: trial {result.best.number}, val acc {_percent(result.best.value)}; "
            f"model at {result.out}"
        )
    lines.append(f"Study {result.study}: trial 0 is the defaults")
    return "\n".join(lines)


def _percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, float) and not math.isnan(value) else "-"


def _value(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)
