"""The ``cnn-desktop`` command's parser and entry point; each group of subcommands has its own
module (``classify``, ``explain``, ``info``, ``train`` for train/evaluate) that calls the
core."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence

from cnn_desktop import __version__
from cnn_desktop.cli.common import EXIT_OK, EXIT_USAGE
from cnn_desktop.cli.explain import add_explain_parser
from cnn_desktop.cli.export import add_export_parser
from cnn_desktop.cli.review import add_review_parser
from cnn_desktop.cli.runs import TRACKING_HELP, add_runs_parser
from cnn_desktop.cli.sweep import add_sweep_parser

MAX_BATCH_SIZE = 4096
MAX_IMG_SIZE = 1024
MAX_LEARNING_RATE = 10.0
TTA_HELP = (
    "test-time augmentation: average the probabilities over 6 views (the image, its mirror, "
    "4 corner crops); 6x the inference"
)


def build_parser() -> argparse.ArgumentParser:
    """The ``cnn-desktop`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="cnn-desktop",
        description="Classify images with CNNs, see why, fine-tune and export models.",
    )
    parser.add_argument("--version", action="version", version=f"cnn-desktop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    gui = commands.add_parser("gui", help="open the desktop window (the default)")
    gui.add_argument("paths", nargs="*", help="images or folders to classify at start")
    gui.add_argument("--model", help="a .cnnmodel bundle or .onnx file (default: built-in)")
    gui.add_argument("--smoke-test", action="store_true", help="check the window works, then exit")

    classify = commands.add_parser("classify", help="classify images and folders")
    classify.add_argument("paths", nargs="+", help="image files and folders (recursive)")
    classify.add_argument("--model", help="a .cnnmodel bundle or .onnx file (default: built-in)")
    classify.add_argument(
        "--top-k", type=_int_between(1, 100_000), default=5, help="classes per image"
    )
    classify.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    classify.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    classify.add_argument(
        "--batch-size",
        type=_int_between(1, MAX_BATCH_SIZE),
        help="images per inference call (default: 8 on CPU, 32 on GPU)",
    )
    classify.add_argument("--format", choices=("table", "json", "csv"), default="table")
    classify.add_argument(
        "--unknown",
        choices=("auto", "off"),
        help="auto (the default): mark images like none of the classes unknown, with the "
        "model's detector (trained models have one; given explicitly, a model without one is "
        "named on stderr); off: never",
    )
    classify.add_argument("--quiet", action="store_true", help="no progress bar")
    classify.add_argument("--tta", action="store_true", help=TTA_HELP)
    classify.add_argument(
        "--verbose",
        action="store_true",
        help="table format: also list the decoder's warnings about damaged but readable files",
    )

    train = commands.add_parser("train", help="train a model on a folder of class folders")
    train.add_argument("data_dir", help="a folder with one sub-folder of images per class")
    train.add_argument("--out", required=True, help="the model bundle to write (NAME.cnnmodel)")
    train.add_argument("--mode", choices=("head", "full", "scratch"), default="head")
    train.add_argument("--arch", help="scratch: lenet5, alexnet, vgg11, googlenet, resnet18, …")
    train.add_argument("--epochs", type=_int_between(1, 100_000))
    train.add_argument("--batch-size", type=_int_between(1, MAX_BATCH_SIZE))
    train.add_argument("--lr", type=_learning_rate, help="learning rate")
    train.add_argument("--val-split", type=_open_fraction, default=0.2)
    train.add_argument(
        "--img-size", type=_int_between(8, MAX_IMG_SIZE), help="scratch: input side in pixels"
    )
    train.add_argument("--augment", help="comma list: flip,vflip,rotate,crop,color,blur,noise")
    train.add_argument("--seed", type=_int_between(0, 2**32 - 1), default=0)
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    train.add_argument("--balance", choices=("auto", "weights", "sampler", "none"), default="auto")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--tracking-uri", metavar="URI", help=TRACKING_HELP)

    evaluate = commands.add_parser("evaluate", help="accuracy and confusion matrix on a folder")
    evaluate.add_argument("model", help="a .cnnmodel bundle or .onnx file")
    evaluate.add_argument("data_dir", help="a folder with one sub-folder of images per class")
    evaluate.add_argument("--format", choices=("table", "json"), default="table")
    evaluate.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    evaluate.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    evaluate.add_argument(
        "--tta", action="store_true", help=TTA_HELP + "; also reports the accuracy without it"
    )

    add_explain_parser(commands)
    add_export_parser(commands)
    add_review_parser(commands)
    add_runs_parser(commands)
    add_sweep_parser(commands, TRACKING_HELP)

    info = commands.add_parser("info", help="versions, devices and working ONNX providers")
    info.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def _int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value

    return parse


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _learning_rate(text: str) -> float:
    value = _finite_float(text)
    if not 0 < value <= MAX_LEARNING_RATE:
        raise argparse.ArgumentTypeError(
            f"must be above 0 and at most {MAX_LEARNING_RATE:g}, got {text}"
        )
    return value


def _open_fraction(text: str) -> float:
    value = _finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cnn-desktop`` console script."""
    _escape_unencodable_output()
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader went away (``cnn-desktop classify … | head``): stop quietly.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _escape_unencodable_output() -> None:
    """Print what the output encoding cannot carry as backslash escapes instead of failing.

    A file name that is not valid UTF-8 reaches Python as lone surrogates (``caf\udce9.png``);
    printed with the default strict handler it raises, and with ``surrogateescape`` it writes
    bytes that make the output invalid UTF-8. As ``\udce9`` every format stays valid text,
    and inside a JSON string it is a JSON escape that decodes back to the same path
    (``os.fsencode(json.loads(line)["path"])`` gives the file's bytes).
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "smoke_test", False):
        from cnn_desktop.gui.smoke_test import run_smoke_test

        return run_smoke_test(args.paths, args.model)
    if args.command in (None, "gui"):
        from cnn_desktop.gui.app import run_app

        return run_app(getattr(args, "paths", []) or [], getattr(args, "model", None))
    if args.command == "classify":
        from cnn_desktop.cli.classify import run_classify

        return run_classify(args)
    if args.command == "info":
        from cnn_desktop.cli.info import run_info

        return run_info(args)
    if args.command == "train":
        from cnn_desktop.cli.train import run_train

        return run_train(args)
    if args.command == "export":
        from cnn_desktop.cli.export import run_export

        return run_export(args)
    if args.command == "evaluate":
        from cnn_desktop.cli.train import run_evaluate

        return run_evaluate(args)
    if args.command == "explain":
        from cnn_desktop.cli.explain import run_explain

        return run_explain(args)
    if args.command == "sweep":
        from cnn_desktop.cli.sweep import run_sweep_command

        return run_sweep_command(args)
    if args.command == "runs":
        from cnn_desktop.cli.runs import run_runs

        return run_runs(args)
    if args.command == "review":
        from cnn_desktop.cli.review import run_review

        return run_review(args)
    return EXIT_USAGE
