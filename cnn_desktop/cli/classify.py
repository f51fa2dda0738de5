"""``cnn-desktop classify``: one result per image as a table, JSON lines or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import sys

from cnn_desktop.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, open_model

PROGRESS_THRESHOLD = 4


def run_classify(args: argparse.Namespace) -> int:
    """Classify files and folders, printing one result per image as a table, JSON or CSV."""
    from cnn_desktop.core.imaging import collect_image_paths, summarize_skipped
    from cnn_desktop.core.inference import BackendError, ImageResult, classify_paths
    from cnn_desktop.core.models import BundleError, PretrainedError

    paths, problems, skipped = collect_image_paths(args.paths)
    if not paths and not problems and not skipped:
        return fail("no images found in " + ", ".join(args.paths), EXIT_FAILED)
    if args.format == "json":  # one line per skipped file; the other formats get a summary
        for path, reason in skipped:
            print(json.dumps({"path": str(path), "skipped": reason}, ensure_ascii=False))
    elif skipped:
        print(summarize_skipped(skipped), file=sys.stderr)
    if not paths and not problems:
        return EXIT_OK  # skipping is not failing
    try:
        _, classifier = open_model(args.model, args.backend, args.device)
    except (BundleError, BackendError, PretrainedError) as exc:
        return fail(str(exc), EXIT_USAGE)

    writer = _ResultWriter(args.format, args.top_k, verbose=args.verbose)
    failures = [ImageResult(path=p, error=reason) for p, reason in problems]
    for result in failures:
        writer.write(result)
    results = classify_paths(
        paths, classifier, top_k=args.top_k, batch_size=args.batch_size, tta=args.tta
    )
    bar = None
    if len(paths) > PROGRESS_THRESHOLD and not args.quiet:
        from cnn_desktop.cli.progress import progress_bar

        bar = progress_bar(total=len(paths), unit="img", desc="Classifying")
    try:
        for result in results:
            writer.write(result)
            if not result.ok:
                failures.append(result)
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        print(
            f"{len(failures)} of {len(paths) + len(problems)} could not be classified",
            file=sys.stderr,
        )
    return EXIT_FAILED if failures else EXIT_OK


class _ResultWriter:
    """Prints results as a table, JSON lines or CSV rows on stdout."""

    def __init__(self, fmt: str, top_k: int, *, verbose: bool = False) -> None:
        self.format = fmt
        self.top_k = top_k
        self.verbose = verbose
        self.csv = csv.writer(sys.stdout) if fmt == "csv" else None
        if self.csv is not None:
            self.csv.writerow(["path", "rank", "label", "index", "confidence", "error"])

    def write(self, result: object) -> None:
        from cnn_desktop.core.inference import ImageResult

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
            if self.verbose:
                for warning in result.warnings:
                    print(f"    warning: {warning}")
        sys.stdout.flush()
