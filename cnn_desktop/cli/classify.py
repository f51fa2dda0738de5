"""``cnn-desktop classify``: one result per image as a table, JSON lines or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnn_desktop.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, open_model

PROGRESS_THRESHOLD = 4
UNKNOWN_MARK = "unknown — none of these; the closest classes:"


def run_classify(args: argparse.Namespace) -> int:
    """Classify files and folders, printing one result per image as a table, JSON or CSV.

    The folders are walked lazily and each result is printed as it comes, so the first lines
    of a folder of 100,000 files appear within seconds and memory does not grow with it.
    """
    from cnn_desktop.core.imaging import summarize_skipped
    from cnn_desktop.core.inference import BackendError, choose_detector, classify_paths
    from cnn_desktop.core.models import BundleError, PretrainedError

    writer = _ResultWriter(args.format, args.top_k, verbose=args.verbose)
    walk = _ReportingWalk(args.paths, writer)
    bar = None
    try:
        first = walk.next_image()
        if first is None and not walk.problems:
            if not walk.skipped_count:
                return fail("no images found in " + ", ".join(args.paths), EXIT_FAILED)
            if walk.skipped:
                print(summarize_skipped(walk.skipped), file=sys.stderr)
            return EXIT_OK  # skipping is not failing
        try:
            _, classifier = open_model(args.model, args.backend, args.device)
        except (BundleError, BackendError, PretrainedError) as exc:
            return fail(str(exc), EXIT_USAGE)
        unknown = args.unknown or "auto"
        why_not = choose_detector(classifier, unknown)[1]
        if why_not and args.unknown == "auto":  # asked for: say why "unknown" is null
            print(f"cnn-desktop: note: {why_not}", file=sys.stderr)
        failures = 0
        results = classify_paths(
            walk.images_from(first),
            classifier,
            top_k=args.top_k,
            batch_size=args.batch_size,
            unknown=unknown,
            tta=args.tta,
        )
        for result in results:
            writer.write(result)
            failures += not result.ok
            if bar is None and not args.quiet:
                bar = _progress_bar_if_many(walk)
            if bar is not None:
                if walk.finished and bar.total != walk.images:
                    bar.total = walk.images  # the walk ended: the count is known now
                bar.update(1)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    finally:
        if bar is not None:
            bar.close()
    if walk.skipped:
        print(summarize_skipped(walk.skipped), file=sys.stderr)
    failures += walk.problems
    if failures:
        print(
            f"{failures} of {walk.images + walk.problems} could not be classified",
            file=sys.stderr,
        )
    return EXIT_FAILED if failures else EXIT_OK


def _progress_bar_if_many(walk: _ReportingWalk) -> Any:
    """A progress bar once results come, unless the walk found only a few images; its total
    is unknown (None) while the walk goes on."""
    if walk.finished and walk.images <= PROGRESS_THRESHOLD:
        return None
    from cnn_desktop.cli.progress import progress_bar

    return progress_bar(
        total=walk.images if walk.finished else None, unit="img", desc="Classifying"
    )


class _ReportingWalk:
    """A lazy walk of the inputs that hands image paths on and reports every other outcome
    as soon as it is found: a problem as an error result, a skipped file as a JSON line (or,
    for a table or CSV, kept for the one-line summary at the end)."""

    def __init__(self, inputs: list[str], writer: _ResultWriter) -> None:
        from cnn_desktop.core.imaging import walk_images

        self._entries = walk_images(inputs)
        self._writer = writer
        self.images = 0
        self.problems = 0
        self.skipped_count = 0
        self.skipped: list[tuple[Path, str]] = []
        self.finished = False

    def next_image(self) -> Path | None:
        """Walk on to the next image file (None at the end), reporting what comes before."""
        from cnn_desktop.core.inference import ImageResult

        for path, outcome, reason in self._entries:
            if outcome == "image":
                self.images += 1
                return path
            if outcome == "problem":
                self.problems += 1
                self._writer.write(ImageResult(path=path, error=reason))
                continue
            self.skipped_count += 1
            if self._writer.format == "json":
                print(json.dumps({"path": str(path), "skipped": reason}, ensure_ascii=False))
            else:
                self.skipped.append((path, reason or ""))
        self.finished = True
        return None

    def images_from(self, first: Path | None) -> Iterator[Path]:
        """``first``, then every further image file, walked only as they are asked for."""
        path = first
        while path is not None:
            yield path
            path = self.next_image()


class _ResultWriter:
    """Prints results as a table, JSON lines or CSV rows on stdout."""

    def __init__(self, fmt: str, top_k: int, *, verbose: bool = False) -> None:
        self.format = fmt
        self.top_k = top_k
        self.verbose = verbose
        self.csv = csv.writer(sys.stdout) if fmt == "csv" else None
        self._header_due = self.csv is not None  # printed with the first row

    def write(self, result: object) -> None:
        from cnn_desktop.core.inference import ImageResult

        assert isinstance(result, ImageResult)
        if self.csv is not None and self._header_due:
            self.csv.writerow(["path", "rank", "label", "index", "confidence", "error", "unknown"])
            self._header_due = False
        if self.format == "json":
            print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
        elif self.csv is not None:
            if result.error is not None:
                self.csv.writerow([result.path, "", "", "", "", result.error, ""])
            verdict = "" if result.unknown is None else str(result.unknown).lower()
            for rank, p in enumerate(result.predictions, 1):
                confidence = f"{p.confidence:.6f}"
                self.csv.writerow([result.path, rank, p.label, p.index, confidence, "", verdict])
        else:
            print(str(result.path))
            if result.error is not None:
                print(f"    error: {result.error}")
            if result.unknown:
                print(f"    {UNKNOWN_MARK}")
            for p in result.predictions:
                print(f"    {p.confidence * 100:6.2f}%  {p.label}")
            if self.verbose:
                for warning in result.warnings:
                    print(f"    warning: {warning}")
        sys.stdout.flush()
