"""``cnn-desktop runs list|show|compare|rerun|delete``: the recorded training runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cnn_desktop.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, warning_line

TRACKING_HELP = (
    "also record the run in this MLflow tracking store (sqlite:///runs.db, or a team's "
    "http://server:5000; default: MLFLOW_TRACKING_URI)"
)


def add_runs_parser(commands: argparse._SubParsersAction) -> None:
    """The ``runs`` subcommand and its actions."""
    runs = commands.add_parser("runs", help="the recorded training runs: list, compare, re-run")
    actions = runs.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the runs, newest first")
    listing.add_argument("--data", metavar="DIR", help="only the runs trained on this folder")
    listing.add_argument("--status", choices=("running", "finished", "cancelled", "failed"))
    show = actions.add_parser("show", help="one run's whole record")
    show.add_argument("run", help="a run id (or a unique start of one)")
    compare = actions.add_parser("compare", help="what differs between runs, and their results")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="two or more run ids")
    rerun = actions.add_parser("rerun", help="repeat a run: same config, seed and data")
    rerun.add_argument("run", help="a run id (or a unique start of one)")
    rerun.add_argument("--out", help="the model to write (default: beside the run's model)")
    rerun.add_argument("--tracking-uri", metavar="URI", help=TRACKING_HELP)
    rerun.add_argument("--quiet", action="store_true", help="no progress bar")
    delete = actions.add_parser("delete", help="remove a run's record")
    delete.add_argument("run", help="a run id (or a unique start of one)")
    delete.add_argument(
        "--with-bundle", action="store_true", help="also delete the model bundle it saved"
    )
    for action in (listing, show, compare, delete):
        action.add_argument("--format", choices=("table", "json"), default="table")


def run_runs(args: argparse.Namespace) -> int:
    """Do one ``runs`` action."""
    from cnn_desktop.core.runs import RunStore, RunStoreError

    store = RunStore()
    try:
        if args.action == "list":
            code = _list(store, args)
        elif args.action == "show":
            code = _show(store.get(args.run), args.format)
        elif args.action == "compare":
            code = _compare(store, args)
        elif args.action == "rerun":
            code = _rerun(store, args)
        else:
            code = _delete(store, args)
    except RunStoreError as exc:
        code = fail(str(exc), EXIT_USAGE)
    for problem in store.problems:
        print(warning_line(problem), file=sys.stderr)
    return code


def _list(store: Any, args: argparse.Namespace) -> int:
    from cnn_desktop.core.runs import run_summary

    records = store.runs()
    if args.data:
        folder = str(Path(args.data).resolve())
        records = [r for r in records if (r.get("data") or {}).get("folder") == folder]
    if args.status:
        records = [r for r in records if r.get("status") == args.status]
    rows = [run_summary(record) for record in records]
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print(f"No runs recorded in {store.root}" + (" for that folder" if args.data else ""))
        return EXIT_OK
    table = [("RUN", "STATUS", "MODE", "ARCH", "EPOCHS", "LR", "VAL ACC", "TIME", "DATA", "TAGS")]
    for row in rows:
        params = row["params"]
        table.append(
            (
                row["id"],
                row["status"],
                row["mode"] or "",
                row["arch"] or "",
                str(params.get("epochs") or ""),
                f"{params['lr']:g}" if params.get("lr") else "",
                _percent(row["val_accuracy"]),
                _seconds(row["duration_s"]),
                Path(row["data"] or "").name,
                " ".join(f"{k}={v}" for k, v in row["tags"].items()),
            )
        )
    print(_columns(table))
    return EXIT_OK


def _show(record: dict[str, Any], fmt: str) -> int:
    from cnn_desktop.core.runs import value_text

    if fmt == "json":
        print(json.dumps(record, ensure_ascii=False))
        return EXIT_OK
    config = record.get("config") or {}
    metrics = record.get("metrics") or {}
    data = record.get("data") or {}
    lines = [
        f"Run {record['id']}: {record['status']}"
        + (f" ({record['error']})" if record.get("error") else ""),
        f"Started {record.get('started_at')}, took {_seconds(record.get('duration_s'))}",
        f"Data: {data.get('folder')} ({data.get('images', '?')} images, "
        f"fingerprint {data.get('fingerprint', '?')})",
        "Config: " + ", ".join(f"{k} {value_text(v)}" for k, v in config.items()),
        f"Device: {record.get('device') or '?'}, {record.get('world_size', 1)} process(es)",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items()),
        "Results: "
        + ", ".join(f"{k} {value_text(v)}" for k, v in metrics.items() if v is not None),
        f"Model: {record.get('bundle') or 'none saved'}",
    ]
    for row in record.get("history") or []:
        lines.append(
            f"  epoch {row.get('epoch')}: loss {value_text(row.get('loss'))} val acc "
            f"{_percent(row.get('val_accuracy'))}"
        )
    if tags := record.get("tags"):
        lines.append("Tags: " + ", ".join(f"{k}={v}" for k, v in tags.items()))
    if tracking := record.get("tracking"):
        lines.append(
            f"MLflow: {tracking.get('uri')}, run {tracking.get('run_id') or '-'}"
            + (f" ({tracking['error']})" if tracking.get("error") else "")
        )
    print("\n".join(lines))
    return EXIT_OK


def _compare(store: Any, args: argparse.Namespace) -> int:
    from cnn_desktop.core.runs import compare_runs, value_text

    if len(args.runs) < 2:
        return fail("compare needs two or more runs", EXIT_USAGE)
    comparison = compare_runs([store.get(run) for run in args.runs])
    if args.format == "json":
        print(json.dumps(comparison, ensure_ascii=False))
        return EXIT_OK
    table = [("", *comparison["runs"])]
    for section in ("config", "data", "environment", "results"):
        for key, values in comparison[section].items():
            shown = [_percent(v) if "accuracy" in key else value_text(v) for v in values]
            table.append((key, *shown))
    same = [s for s in ("config", "data", "environment") if not comparison[s]]
    print(_columns(table))
    if same:
        print(f"Identical: {', '.join(same)}")
    return EXIT_OK


def _rerun(store: Any, args: argparse.Namespace) -> int:
    from cnn_desktop.cli.train import train_and_report
    from cnn_desktop.core.runs import config_from_record, rerun_output
    from cnn_desktop.core.training import TrainError

    record = store.get(args.run)
    folder = (record.get("data") or {}).get("folder")
    if not folder:
        return fail(f"run {record['id']} records no data folder", EXIT_USAGE)
    try:
        config = config_from_record(record).resolved()
    except (TrainError, TypeError, ValueError) as exc:
        return fail(f"run {record['id']}'s config cannot be used: {exc}", EXIT_USAGE)
    out = args.out or rerun_output(record)
    print(f"Re-running {record['id']} into {out}", file=sys.stderr)
    return train_and_report(folder, out, config, args.quiet, args.tracking_uri, rerun_of=record)


def _delete(store: Any, args: argparse.Namespace) -> int:
    from cnn_desktop.core.models import BundleError
    from cnn_desktop.core.runs import delete_run_bundle

    record = store.get(args.run)
    try:
        removed = delete_run_bundle(record) if args.with_bundle else None
    except (BundleError, OSError) as exc:
        return fail(f"{record.get('bundle')} is not deleted: {exc}", EXIT_FAILED)
    store.delete(record["id"])
    if args.format == "json":
        print(json.dumps({"deleted": record["id"], "bundle_deleted": removed}))
    else:
        print(f"Deleted run {record['id']}" + (f" and its model {removed}" if removed else ""))
    return EXIT_OK


def _columns(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) and value is not None else "-"


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"
