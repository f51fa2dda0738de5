"""Peak memory at scale: classifying and head training on 1,000 and then 10,000 images.

Each measurement is one fresh ``cnn-desktop`` process (``classify`` on a folder with JSON
output, ``train --mode head`` on a class-folder dataset with a cold embedding cache); its peak
RSS comes from ``os.wait4`` for that child alone, so the peaks are independent. Target: peak
memory grows by less than 200 MB from 1,000 to 10,000 images, for both.

The images are small JPEGs (128×96 by default): the model sees 224×224 whatever the file
size, so this measures what grows with the number of files, not decode buffers.

Run: ``nice -n 10 .venv/bin/python -m benchmarks.bench_memory [--out FILE]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_train import write_dataset
from benchmarks.common import write_report
from cnn_desktop.core.models.pretrained import cache_dir as default_cache

TARGET_GROWTH_MB = 200
SIZES = (1_000, 10_000)


def measured_cli(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run ``cnn-desktop ARGS`` in a fresh process; its peak RSS (MB) and wall time (s)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "cnn_desktop", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    stderr = process.stderr.read()  # small: --quiet
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode not in (0, 1):
        message = stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"cnn-desktop {' '.join(args)} failed:\n{message}")
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "seconds": round(seconds, 1)}


def with_growth(runs: dict[str, dict[str, float]]) -> dict[str, object]:
    """The runs, the growth of the peak from the smallest to the largest, and the verdict."""
    small, large = (runs[f"{n}_images"]["peak_rss_mb"] for n in (SIZES[0], SIZES[-1]))
    growth = round(large - small, 1)
    return {**runs, "growth_mb": growth, "met": growth < TARGET_GROWTH_MB}


def classify_runs(datasets: dict[int, Path], env: dict[str, str]) -> dict[str, object]:
    runs = {}
    for count, folder in datasets.items():
        args = ["classify", str(folder), "--format", "json", "--quiet", "--top-k", "1"]
        runs[f"{count}_images"] = measured_cli(args, env)
    return with_growth(runs)


def head_training_runs(datasets: dict[int, Path], work: Path, env: dict[str, str]) -> dict:
    runs = {}
    embeddings = Path(env["CNN_DESKTOP_CACHE_DIR"]) / "embeddings"
    for count, folder in datasets.items():
        shutil.rmtree(embeddings, ignore_errors=True)  # cold: every image is embedded
        out = work / f"head-{count}"
        args = ["train", str(folder), "--out", str(out), "--mode", "head", "--quiet"]
        runs[f"{count}_images"] = measured_cli(args, env)
    return with_growth(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--images", type=Path, default=Path(tempfile.gettempdir()) / "cnn-desktop-bench-memory"
    )
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--only", choices=("classify", "head_training"), help="one of the two")
    args = parser.parse_args()
    size = (args.width, args.height)
    datasets = {
        n: write_dataset(args.images / f"{n}-{args.width}x{args.height}", n // 10, size)
        for n in SIZES
    }
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        env = dict(os.environ, CNN_DESKTOP_CACHE_DIR=str(work / "cache"))
        if (built := default_cache() / "models").is_dir():  # spares an export; checked anyway
            shutil.copytree(built, work / "cache" / "models")
        build = "from cnn_desktop.core.models import default_model_bundle as b; b()"
        subprocess.run([sys.executable, "-c", build], env=env, check=True)
        report: dict[str, object] = {
            "benchmark": "memory",
            "image_size": list(size),
            "target": f"peak RSS grows < {TARGET_GROWTH_MB} MB from 1,000 to 10,000 images",
        }
        if args.only in (None, "classify"):
            report["classify"] = classify_runs(datasets, env)
        if args.only in (None, "head_training"):
            report["head_training"] = head_training_runs(datasets, work, env)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
