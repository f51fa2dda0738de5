"""``cnn-desktop review``: suspected label errors, duplicates and outliers of a training folder."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cnn_desktop.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail
from cnn_desktop.cli.progress import FractionBar

_TABLE_SKIPPED_SHOWN = 20


def add_review_parser(commands: argparse._SubParsersAction) -> None:
    """The ``review`` subcommand's arguments."""
    review = commands.add_parser(
        "review",
        help="find suspected label errors, duplicates and outliers in a training folder",
    )
    review.add_argument("data_dir", help="a folder with one sub-folder of images per class")
    review.add_argument(
        "--model",
        help="a .cnnmodel bundle whose backbone embeds the images (default: built-in)",
    )
    review.add_argument("--format", choices=("table", "json"), default="table")
    review.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    review.add_argument("--quiet", action="store_true", help="no progress bar")


def run_review(args: argparse.Namespace) -> int:
    """Review the folder; print the findings, best first (JSON: one line each)."""
    from cnn_desktop.core.models import BundleError, PretrainedError
    from cnn_desktop.core.review import review_folder
    from cnn_desktop.core.tasks import Cancelled
    from cnn_desktop.core.training import DatasetError

    bar = FractionBar("Reviewing", quiet=args.quiet)
    try:
        try:
            report = review_folder(args.data_dir, args.model, device=args.device, progress=bar)
        finally:
            bar.close()
    except (DatasetError, BundleError, PretrainedError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except (Cancelled, KeyboardInterrupt):
        return fail("interrupted", EXIT_INTERRUPTED)
    for note in report.notes:
        print(note, file=sys.stderr)
    _print_skipped(report.skipped, everything=args.format == "json")
    counts = ", ".join(f"{n} {kind}" for kind, n in report.counts().items())
    print(
        f"Reviewed {report.images} images in {len(report.classes)} classes, embedded by "
        f"{report.embedded_by}: {counts}",
        file=sys.stderr,
    )
    if args.format == "json":
        for finding in report.findings:
            print(json.dumps(finding.to_dict(), ensure_ascii=False))
    else:
        _print_table(report)
    return EXIT_OK


def _print_skipped(skipped: list[tuple[Path, str]], *, everything: bool) -> None:
    """Each skipped file with the scan's reason, on stderr (the table shows the first few)."""
    shown = skipped if everything else skipped[:_TABLE_SKIPPED_SHOWN]
    for path, reason in shown:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if len(skipped) > len(shown):
        print(f"… and {len(skipped) - len(shown)} more skipped", file=sys.stderr)


def _print_table(report) -> None:
    if not report.findings:
        print("No suspected label errors, duplicates or outliers.")
        return

    def short(path: Path) -> str:
        try:
            return os.path.relpath(path, report.root)
        except ValueError:  # another drive (Windows)
            return str(path)

    rows = [
        (
            f"{f.score:.3f}",
            f.kind,
            f.given,
            f.suggested if f.suggested != f.given else "",
            short(f.path) + (f"  (= {short(f.other)})" if f.other is not None else ""),
        )
        for f in report.findings
    ]
    header = ("score", "kind", "given", "suggested", "file")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        print("  ".join([*cells, row[4]]))
