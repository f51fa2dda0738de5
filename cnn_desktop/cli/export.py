"""``cnn-desktop export``: a verified copy of a model, or its INT8 version with a parity report."""

from __future__ import annotations

import argparse
import json
import sys

from cnn_desktop.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail
from cnn_desktop.cli.progress import FractionBar


def add_export_parser(commands: argparse._SubParsersAction) -> None:
    """The ``export`` subcommand's arguments."""
    export = commands.add_parser(
        "export", help="save a model as a new bundle, optionally quantized to INT8"
    )
    export.add_argument(
        "model", nargs="?", help="a .cnnmodel bundle or .onnx file (default: built-in)"
    )
    export.add_argument("--out", required=True, help="the bundle to write (NAME.cnnmodel)")
    export.add_argument("--int8", action="store_true", help="static INT8 quantization")
    export.add_argument(
        "--calibration",
        metavar="DIR",
        help="--int8: typical images to calibrate on (default: the model's validation images)",
    )
    export.add_argument(
        "--force", action="store_true", help="replace a model bundle already at --out"
    )
    export.add_argument("--format", choices=("table", "json"), default="table")
    export.add_argument("--quiet", action="store_true", help="no progress")


def run_export(args: argparse.Namespace) -> int:
    """Export the model; print the parity report (INT8) and the new bundle's path."""
    from cnn_desktop.core.export import ExportError, check_export_output, export_model
    from cnn_desktop.core.models import (
        BundleError,
        PretrainedError,
        default_model_bundle,
        load_bundle,
    )
    from cnn_desktop.core.tasks import Cancelled

    if args.calibration is not None and not args.int8:
        return fail("--calibration is only used with --int8", EXIT_USAGE)
    try:
        if args.model:
            source = load_bundle(args.model)
        else:
            source = default_model_bundle(
                lambda f, m: print(m, file=sys.stderr) if f == 0 else None
            )
        check_export_output(args.out, source, args.force)
    except (BundleError, ExportError, PretrainedError) as exc:
        return fail(str(exc), EXIT_USAGE)
    progress = FractionBar("Exporting", quiet=args.quiet)
    try:
        try:
            result = export_model(
                source,
                args.out,
                int8=args.int8,
                calibration=args.calibration,
                force=args.force,
                progress=progress,
            )
        finally:
            progress.close()
    except ExportError as exc:
        return fail(str(exc), EXIT_USAGE)
    except BundleError as exc:  # the new bundle could not be written
        return fail(str(exc), EXIT_FAILED)
    except (Cancelled, KeyboardInterrupt):
        return fail("interrupted; nothing saved", EXIT_INTERRUPTED)
    _print_result(result, args.format)
    return EXIT_OK


def _print_result(result, fmt: str) -> None:
    from cnn_desktop.core.export import report_lines

    if fmt == "json":
        line = {
            "path": str(result.bundle.path),
            "int8": result.int8,
            "replaced": result.replaced,
            "report": result.report,
        }
        print(json.dumps(line, ensure_ascii=False))
        return
    for text in report_lines(result.report) if result.report else []:
        print(text)
    print(str(result.bundle.path))
