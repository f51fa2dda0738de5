"""``cnn-desktop train`` and ``cnn-desktop evaluate``: argument handling and output only."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys

from cnn_desktop.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    first_ctrl_c_cancels,
    open_model,
    warning_line,
)

_DISTRIBUTED_INTERRUPT = (
    "interrupted; a model already at --out is unchanged, and the checkpoint of the last "
    "finished epoch (if any) continues with --resume"
)


def run_train(args: argparse.Namespace) -> int:
    """Train, printing the scan report, a progress bar and one line per epoch."""
    from cnn_desktop.core.training import (
        AugmentationError,
        TrainConfig,
        TrainError,
        parse_augmentations,
    )

    try:
        config = TrainConfig(
            mode=args.mode,
            arch=args.arch,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            val_split=args.val_split,
            img_size=args.img_size,
            augment=parse_augmentations(args.augment) if args.augment is not None else None,
            seed=args.seed,
            device=args.device,
            balance=args.balance,
            resume=args.resume,
        ).resolved()
    except (TrainError, AugmentationError) as exc:
        return fail(str(exc), EXIT_USAGE)
    return train_and_report(args.data_dir, args.out, config, args.quiet, args.tracking_uri)


def train_and_report(
    data_dir: str,
    out: str,
    config,
    quiet: bool,
    tracking_uri: str | None,
    rerun_of: dict | None = None,
) -> int:
    """Train with the run recorded (``cnn-desktop runs``), show progress, report the result."""
    from cnn_desktop.core.models import BundleError
    from cnn_desktop.core.runs import DataChangedError, recorded_train
    from cnn_desktop.core.tasks import Cancelled, CancelToken
    from cnn_desktop.core.training import (
        DatasetError,
        TrainError,
        TrainRunError,
        check_distributed,
        launched,
    )

    try:  # under torchrun rank 0 alone prints; the other ranks only their own failures
        launch = launched()
        if launch is not None:
            check_distributed(config)
    except TrainError as exc:
        return fail(str(exc), EXIT_USAGE) if os.environ.get("RANK", "0") == "0" else EXIT_USAGE
    main_rank = launch is None or launch.is_main
    rank = "" if main_rank else f"rank {launch.rank}: "
    cancel = CancelToken()
    bar, last = None, None
    events = recorded_train(
        data_dir, out, config, cancel=cancel, tracking_uri=tracking_uri, rerun_of=rerun_of
    )
    try:
        # Under torchrun the ranks cannot agree on a later step to stop at: Ctrl+C (Python's
        # KeyboardInterrupt) stops every one of them at once.
        with (
            first_ctrl_c_cancels(cancel, "Stopping after this step; the best model so far is kept…")
            if launch is None
            else contextlib.nullcontext()
        ):
            # Run the generator to its end: a finished run removes its resume checkpoint
            # after its last event.
            for event in events:
                if main_rank:
                    bar = _show(event, bar, quiet)
                if event.kind in ("done", "cancelled"):
                    last = event
    except TrainRunError as exc:  # it started, then could not go on (the images vanished…)
        return fail(f"{rank}{exc}", EXIT_FAILED)
    except (TrainError, DatasetError, DataChangedError) as exc:  # the same on every rank
        return fail(str(exc), EXIT_USAGE) if main_rank else EXIT_USAGE
    except BundleError as exc:
        return fail(str(exc), EXIT_FAILED)
    except OSError as exc:  # e.g. the disk filled up while writing the resume checkpoint
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(f"{rank}{where}{exc.strerror or exc}", EXIT_FAILED)
    except RuntimeError as exc:  # torchrun: another rank died, or a collective timed out
        if launch is None:
            raise
        cause = str(exc).strip().splitlines()[0]
        return fail(f"{rank}the data-parallel run broke off ({cause})", EXIT_FAILED)
    except (Cancelled, KeyboardInterrupt):
        if launch is not None:
            return fail(_DISTRIBUTED_INTERRUPT, EXIT_INTERRUPTED) if main_rank else EXIT_INTERRUPTED
        return fail("interrupted before the first epoch finished; nothing saved", EXIT_INTERRUPTED)
    finally:
        if bar is not None:
            bar.close()
    if not main_rank:
        return EXIT_OK  # trained its share; rank 0 exports and saves
    if last is None:
        return fail("training ended without a result", EXIT_FAILED)
    code = _report_result(last)
    if run_id := last.data.get("run_id"):
        print(f"Recorded as run {run_id} (cnn-desktop runs show {run_id})", file=sys.stderr)
    return code


def _report_result(event) -> int:
    """Print the verdict, where the model went, the accuracy and (stdout) the model's path."""
    from cnn_desktop.core.training import checkpoint_path

    result = event.result
    print(event.message, file=sys.stderr)
    if result.cancelled and checkpoint_path(result.target).exists():
        print(
            f"Continue this run with: --out {result.target} --resume (the other options as now)",
            file=sys.stderr,
        )
    evaluation = result.metrics.get("evaluation", {})
    if "accuracy" in evaluation:
        print(f"{result.metrics['evaluation_set']} accuracy: {evaluation['accuracy']:.1%}")
    if (calibration := result.metrics.get("calibration") or {}).get("images"):
        print(_calibration_line(calibration))
    if unknown := result.metrics.get("unknown"):
        print(_unknown_line(unknown))
    print(str(result.bundle.path))
    if not result.export_verified:
        return fail("the ONNX export does not match the PyTorch model", EXIT_FAILED)
    return EXIT_INTERRUPTED if event.kind == "cancelled" else EXIT_OK


def _calibration_line(calibration: dict) -> str:
    """``calibration: temperature 1.42, ECE 0.151 → 0.021`` on validation (and on test)."""
    line = (
        f"calibration: temperature {calibration['temperature']:.2f}, ECE "
        f"{calibration['ece_before']:.3f} → {calibration['ece_after']:.3f} (validation"
    )
    test = calibration.get("test") or {}
    if test.get("images"):
        line += f"; test {test['ece_before']:.3f} → {test['ece_after']:.3f}"
    return line + ")"


def _unknown_line(unknown: dict) -> str:
    """``unknown detector: keeps 95.0% of validation images (test: 4.8% marked unknown)``,
    or why the model has none."""
    if unknown.get("method") is None:
        return f"unknown detector: none ({unknown.get('reason', 'not fitted')})"
    line = f"unknown detector: keeps {unknown['validation_keep_rate']:.1%} of validation images"
    if test := unknown.get("test"):
        line += f" (test: {test['rate']:.1%} marked unknown)"
    return line


def _show(event, bar, quiet: bool):
    if event.kind == "scan":
        print(event.message, file=sys.stderr)
        return bar
    if event.kind in ("step", "embed", "epoch") and not quiet:
        if bar is None:
            from cnn_desktop.cli.progress import progress_bar

            bar = progress_bar(total=1000, desc="Training", bar_format="{l_bar}{bar}| {postfix}")
        bar.n = round(event.fraction * 1000)
        if event.kind == "embed":
            bar.set_description("Embedding")
            bar.set_postfix_str(event.message)
        else:
            bar.set_description(f"Epoch {event.epoch}/{event.epochs}")
            eta = f", {event.eta_s:.0f} s left" if not math.isnan(event.eta_s) else ""
            bar.set_postfix_str(f"loss {event.loss:.3f}, {event.images_per_s:.0f} img/s{eta}")
        bar.refresh()
    if event.kind == "epoch":
        line = (
            f"epoch {event.epoch}/{event.epochs}: loss {event.loss:.4f} acc {event.accuracy:.1%}"
            f" | val loss {event.val_loss:.4f} val acc {event.val_accuracy:.1%}"
            + (f" ({event.message})" if event.message else "")
        )
        if bar is not None:
            bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)
    elif event.kind in ("export", "checkpoint") and event.message:
        (bar.write if bar is not None else print)(event.message, file=sys.stderr)
    elif event.kind == "notice":  # shown also with --quiet: the run goes on, but differently
        (bar.write if bar is not None else print)(warning_line(event.message), file=sys.stderr)
    return bar


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a model on a labelled folder; JSON is one object."""
    from cnn_desktop.core.inference import BackendError
    from cnn_desktop.core.models import BundleError
    from cnn_desktop.core.training import DatasetError, evaluate_folder

    try:
        _, classifier = open_model(args.model, args.backend, args.device)
        evaluation = evaluate_folder(classifier, args.data_dir, tta=args.tta)
    except (BundleError, BackendError, DatasetError) as exc:
        return fail(str(exc), EXIT_USAGE)
    if args.format == "json":
        print(json.dumps(evaluation.to_dict(), ensure_ascii=False))
    else:
        print(evaluation.table())
    return EXIT_FAILED if evaluation.errors else EXIT_OK
