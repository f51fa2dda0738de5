"""Command-line interface: parses arguments and calls the core; holds no logic of its own."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence

from cnn_desktop import __version__

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
PROGRESS_THRESHOLD = 4


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
    classify.add_argument("--top-k", type=_positive_int, default=5, help="classes per image")
    classify.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    classify.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    classify.add_argument(
        "--batch-size",
        type=_positive_int,
        help="images per inference call (default: 8 on CPU, 32 on GPU)",
    )
    classify.add_argument("--format", choices=("table", "json", "csv"), default="table")
    classify.add_argument("--quiet", action="store_true", help="no progress bar")

    train = commands.add_parser("train", help="train a model on a folder of class folders")
    train.add_argument("data_dir", help="a folder with one sub-folder of images per class")
    train.add_argument("--out", required=True, help="the model bundle to write (NAME.cnnmodel)")
    train.add_argument("--mode", choices=("head", "full", "scratch"), default="head")
    train.add_argument("--arch", help="scratch: lenet5, alexnet, vgg11, googlenet, resnet18, …")
    train.add_argument("--epochs", type=_positive_int)
    train.add_argument("--batch-size", type=_positive_int)
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument("--val-split", type=float, default=0.2)
    train.add_argument("--img-size", type=_positive_int, help="scratch: input side in pixels")
    train.add_argument("--augment", help="comma list: flip,vflip,rotate,crop,color,blur,noise")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    train.add_argument("--balance", choices=("auto", "weights", "sampler", "none"), default="auto")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = commands.add_parser("evaluate", help="accuracy and confusion matrix on a folder")
    evaluate.add_argument("model", help="a .cnnmodel bundle or .onnx file")
    evaluate.add_argument("data_dir", help="a folder with one sub-folder of images per class")
    evaluate.add_argument("--format", choices=("table", "json"), default="table")
    evaluate.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    evaluate.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")

    info = commands.add_parser("info", help="versions, devices and working ONNX providers")
    info.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cnn-desktop`` console script."""
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader went away (``cnn-desktop classify … | head``): stop quietly.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "smoke_test", False):
        from cnn_desktop.gui.smoke_test import run_smoke_test

        return run_smoke_test(args.paths, args.model)
    if args.command in (None, "gui"):
        from cnn_desktop.gui.app import run_app

        return run_app(getattr(args, "paths", []) or [], getattr(args, "model", None))
    if args.command == "classify":
        return _classify(args)
    if args.command == "info":
        return _info(args)
    if args.command == "train":
        from cnn_desktop.cli_train import run_train

        return run_train(args)
    if args.command == "evaluate":
        from cnn_desktop.cli_train import run_evaluate

        return run_evaluate(args)
    return EXIT_USAGE


def _fail(message: str, code: int) -> int:
    print(f"cnn-desktop: error: {message}", file=sys.stderr)
    return code


def _classify(args: argparse.Namespace) -> int:
    from cnn_desktop.core.backends import BackendError, open_classifier
    from cnn_desktop.core.bundle import BundleError, load_bundle
    from cnn_desktop.core.images import collect_image_paths
    from cnn_desktop.core.predict import ImageResult, classify_paths
    from cnn_desktop.core.pretrained import PretrainedError, default_model_bundle

    paths, problems = collect_image_paths(args.paths)
    if not paths and not problems:
        return _fail("no images found in " + ", ".join(args.paths), EXIT_SOME_FAILED)
    try:
        if args.model:
            bundle = load_bundle(args.model)
        else:
            bundle = default_model_bundle(
                lambda f, m: print(m, file=sys.stderr) if f == 0 else None
            )
        classifier = open_classifier(bundle, args.backend, args.device)
    except (BundleError, BackendError, PretrainedError) as exc:
        return _fail(str(exc), EXIT_USAGE)

    writer = _ResultWriter(args.format, args.top_k)
    failures = [ImageResult(path=p, error=reason) for p, reason in problems]
    for result in failures:
        writer.write(result)
    results = classify_paths(paths, classifier, top_k=args.top_k, batch_size=args.batch_size)
    bar = None
    if len(paths) > PROGRESS_THRESHOLD and not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="img", file=sys.stderr, desc="Classifying")
    try:
        for result in results:
            writer.write(result)
            if not result.ok:
                failures.append(result)
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        print(
            f"{len(failures)} of {len(paths) + len(problems)} could not be classified",
            file=sys.stderr,
        )
    return EXIT_SOME_FAILED if failures else EXIT_OK


class _ResultWriter:
    """Prints results as a table, JSON lines or CSV rows on stdout."""

    def __init__(self, fmt: str, top_k: int) -> None:
        self.format = fmt
        self.top_k = top_k
        self.csv = csv.writer(sys.stdout) if fmt == "csv" else None
        if self.csv is not None:
            self.csv.writerow(["path", "rank", "label", "index", "confidence", "error"])

    def write(self, result: object) -> None:
        from cnn_desktop.core.predict import ImageResult

        assert isinstance(result, ImageResult)
        if self.format == "json":
            print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
        elif self.csv is not None:
            if result.error is not None:
                self.csv.writerow([result.path, "", "", "", "", result.error])
            for rank, p in enumerate(result.predictions, 1):
                self.csv.writerow([result.path, rank, p.label, p.index, f"{p.confidence:.6f}", ""])
        else:
            print(str(result.path))
            if result.error is not None:
                print(f"    error: {result.error}")
            for p in result.predictions:
                print(f"    {p.confidence * 100:6.2f}%  {p.label}")
        sys.stdout.flush()


def _info(args: argparse.Namespace) -> int:
    from cnn_desktop.core.sysinfo import system_info

    info = system_info()
    if args.format == "json":
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"cnn-desktop {info['cnn_desktop']}  (Python {info['python']}, {info['platform']})")
    print(f"CPU threads: {info['cpu_threads']}")
    print("Packages:")
    for name, version in info["packages"].items():
        print(f"  {name:20} {version}")
    print("ONNX Runtime providers (available → working):")
    for provider in info["onnx_providers"]:
        state = "working" if provider["working"] else "not working"
        print(f"  {provider['name']:28} {state}  ({provider['detail']})")
    torch_info = info.get("torch", {})
    if torch_info.get("installed"):
        cuda = ", ".join(torch_info["cuda_devices"]) or "no CUDA device"
        has_cuda = "yes" if torch_info["cuda_available"] else "no"
        has_mps = "yes" if torch_info["mps_available"] else "no"
        print(f"PyTorch {torch_info['version']}: CUDA {has_cuda} ({cuda}); MPS {has_mps}")
    else:
        print("PyTorch: not installed (training and Grad-CAM unavailable)")
    return EXIT_OK
