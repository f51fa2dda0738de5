"""``cnn-desktop explain``: heatmaps and overlays of the evidence for a class, per image or
averaged per class folder (``--per-class``)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnn_desktop.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    open_model,
)

PROGRESS_THRESHOLD = 4
METHOD_CHOICES = ("auto", "cam", "grad-cam", "occlusion")
TOP = "top"


def add_explain_parser(commands: Any) -> None:
    """Add the ``explain`` subcommand to the ``cnn-desktop`` subparsers ``commands``."""
    explain = commands.add_parser(
        "explain", help="heatmaps of where the evidence for a class lies, as image files"
    )
    explain.add_argument(
        "paths", nargs="+", help="image files and folders (recursive); with --per-class one folder"
    )
    explain.add_argument("--model", help="a .cnnmodel bundle or .onnx file (default: built-in)")
    explain.add_argument(
        "--class",
        dest="target_class",
        metavar="LABEL|top",
        help="the class to explain (default: the top prediction; with --per-class the "
        "folder's own class where the model has it)",
    )
    explain.add_argument(
        "--method",
        choices=METHOD_CHOICES,
        default="auto",
        help="auto: Grad-CAM on the torch backend, CAM on ONNX, occlusion without a global pool",
    )
    explain.add_argument("--out", required=True, help="the folder the images are written to")
    explain.add_argument(
        "--per-class",
        action="store_true",
        help="average the maps of each class folder of one data folder on the model's crop",
    )
    explain.add_argument("--format", choices=("table", "json"), default="table")
    explain.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    explain.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    explain.add_argument("--quiet", action="store_true", help="no progress bar")


def run_explain(args: argparse.Namespace) -> int:
    """Explain images (or the class folders of one folder) and write the maps to ``--out``."""
    from cnn_desktop.core.explain import Explainer, ExplainError, ExplanationWriter
    from cnn_desktop.core.inference import BackendError
    from cnn_desktop.core.models import BundleError, PretrainedError

    if args.per_class and (len(args.paths) != 1 or not Path(args.paths[0]).is_dir()):
        return fail(
            "--per-class takes one folder with one sub-folder of images per class", EXIT_USAGE
        )
    try:
        bundle, classifier = open_model(args.model, args.backend, args.device)
        explainer = Explainer(bundle, classifier)
        method = explainer.resolve_method(args.method)
        class_index = _class_index(args.target_class, bundle.spec.class_names)
    except (BundleError, BackendError, PretrainedError, ExplainError) as exc:
        return fail(str(exc), EXIT_USAGE)
    try:
        writer = ExplanationWriter(args.out)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return fail(f"cannot create the output folder {args.out}: {reason}", EXIT_USAGE)
    job = _Job(explainer, classifier, writer, _Output(args.format), method, class_index)
    try:
        if args.per_class:
            return _explain_classes(args, job, by_folder=args.target_class is None)
        return _explain_images(args, job)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)


@dataclass(frozen=True)
class _Job:
    """What every image of one run is explained with."""

    explainer: Any
    classifier: Any
    writer: Any
    output: _Output
    method: str
    class_index: int | None


def _class_index(target: str | None, class_names: tuple[str, ...]) -> int | None:
    from cnn_desktop.core.explain import class_index_for

    if target is None or target == TOP:
        return None
    return class_index_for(class_names, target)


def _outside(paths: list[Path], folder: Path) -> list[Path]:
    """``paths`` less those inside ``folder`` (the output of an earlier run)."""
    root = folder.resolve()
    return [p for p in paths if root not in p.resolve().parents]


def _explain_images(args: argparse.Namespace, job: _Job) -> int:
    from cnn_desktop.core.explain import ExplainedImage, explain_image
    from cnn_desktop.core.imaging import collect_image_paths

    paths, problems, skipped = collect_image_paths(args.paths)
    paths = _outside(paths, job.writer.folder)
    if not paths and not problems and not skipped:
        return fail("no images found in " + ", ".join(args.paths), EXIT_FAILED)
    job.output.skipped(skipped)
    failures = 0
    for path, reason in problems:
        job.output.image(ExplainedImage(path=path, error=reason))
        failures += 1
    bar = _bar(args, len(paths))
    try:
        for path in paths:
            result = explain_image(
                path,
                job.explainer,
                job.classifier,
                job.writer,
                class_index=job.class_index,
                method=job.method,
            )
            job.output.image(result)
            failures += not result.ok
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        print(f"{failures} of {len(paths) + len(problems)} could not be explained", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def _explain_classes(args: argparse.Namespace, job: _Job, *, by_folder: bool) -> int:
    """One mean map per class folder; ``by_folder``: explain each folder's own class where
    the model has a class of that name (else the class asked for, or each image's top)."""
    from cnn_desktop.core.explain import ExplainedClass, explain_class
    from cnn_desktop.core.imaging import collect_image_paths

    data_dir = Path(args.paths[0])
    out_root = job.writer.folder.resolve()
    folders = sorted(
        entry
        for entry in data_dir.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and entry.resolve() != out_root
    )
    if not folders:
        return fail(f"no class folders in {data_dir}", EXIT_USAGE)
    listings = [(folder, collect_image_paths([folder])) for folder in folders]
    names = job.explainer.spec.class_names
    failures = 0
    bar = _bar(args, sum(len(listing.paths) for _, listing in listings))
    advance = (lambda: bar.update(1)) if bar is not None else None
    try:
        for folder, (paths, problems, skipped) in listings:
            job.output.skipped(skipped)
            for path, reason in problems:
                job.output.error(path, reason)
                failures += 1
            own = by_folder and folder.name in names
            results = explain_class(
                folder.name,
                _outside(paths, out_root),
                job.explainer,
                job.classifier,
                job.writer,
                class_index=names.index(folder.name) if own else job.class_index,
                method=job.method,
                advance=advance,
            )
            for result in results:
                if isinstance(result, ExplainedClass):
                    job.output.mean(result, job.explainer.spec.input_size)
                    failures += result.error is not None
                else:
                    job.output.image(result)
                    failures += 1
    finally:
        if bar is not None:
            bar.close()
    return EXIT_FAILED if failures else EXIT_OK


def _bar(args: argparse.Namespace, total: int) -> Any:
    if total <= PROGRESS_THRESHOLD or args.quiet:
        return None
    from cnn_desktop.cli.progress import progress_bar

    return progress_bar(total=total, unit="img", desc="Explaining")


class _Output:
    """Prints explanations as JSON lines or a readable table on stdout."""

    def __init__(self, fmt: str) -> None:
        self.json = fmt == "json"

    def _line(self, data: dict[str, Any]) -> None:
        print(json.dumps(data, ensure_ascii=False), flush=True)

    def skipped(self, skipped: list[tuple[Path, str]]) -> None:
        from cnn_desktop.core.imaging import summarize_skipped

        if self.json:
            for path, reason in skipped:
                self._line({"path": str(path), "skipped": reason})
        elif skipped:
            print(summarize_skipped(skipped), file=sys.stderr)

    def error(self, path: Path, reason: str) -> None:
        if self.json:
            self._line({"path": str(path), "error": reason})
        else:
            print(f"{path}\n    error: {reason}", flush=True)

    def image(self, result: Any) -> None:
        if result.error is not None:
            self.error(result.path, result.error)
        elif self.json:
            self._line(result.to_dict())
        else:
            x, y = result.peak
            print(
                f"{result.path}\n    {result.label} ({result.confidence * 100:.1f}%), "
                f"{result.method}, strongest at x={x} y={y}\n"
                f"    heatmap: {result.heatmap}\n    overlay: {result.overlay}",
                flush=True,
            )

    def mean(self, result: Any, input_size: tuple[int, int]) -> None:
        if self.json:
            self._line(result.to_dict())
        elif result.error is not None:
            print(f"class {result.name}\n    error: {result.error}", flush=True)
        else:
            x, y = result.peak
            height, width = input_size
            print(
                f"class {result.name}: {result.count} images, {','.join(result.methods)}, "
                f"strongest at x={x} y={y} of the {width}×{height} crop\n"
                f"    heatmap: {result.heatmap}\n    overlay: {result.overlay}",
                flush=True,
            )
