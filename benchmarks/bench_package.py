"""Start-up of the packaged app against the venv, and the size of each flavour built.

Both are started the same way, in fresh processes, alternately within one run: ``gui
--smoke-test IMAGE`` (offscreen), which prints the wall-clock times of the window's first
paint and of the first prediction; the figures are seconds from launching the process, so
interpreter start-up, the bootloader and imports count. The venv is ``sys.executable -m
cnn_desktop`` on the source tree with the built-in model already in its cache; the package
is ``build/pyinstaller-FLAVOUR/dist/cnn-desktop/cnn-desktop`` under a minimal environment
(``PATH=/usr/bin:/bin``, a fresh HOME). Sizes: the unpacked folder, the ``.tar.gz`` and the
``.deb`` in ``dist/``, and the largest parts of the folder.

Run ``make package`` first, then ``python -m benchmarks.bench_package [--runs 5] [--out F]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_report

REPO_ROOT = Path(__file__).resolve().parent.parent
SMOKE_IMAGE = REPO_ROOT / "packaging" / "smoke" / "chelsea.jpg"
FLAVOURS = ("lite", "full")
STAGES = ("window_painted", "first_prediction")


def app_folder(flavour: str) -> Path:
    """Where ``make package FLAVOUR=flavour`` leaves the unpacked app."""
    return REPO_ROOT / "build" / f"pyinstaller-{flavour}" / "dist" / "cnn-desktop"


def launch(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Seconds from launching ``command`` (a ``gui --smoke-test``) to each stage."""
    launched = time.time()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()[-500:]}")
    line = next(li for li in result.stdout.splitlines() if li.startswith("timings: "))
    times = json.loads(line.removeprefix("timings: "))
    return {stage: round(times[stage] - launched, 3) for stage in STAGES}


def venv_command() -> tuple[list[str], dict[str, str]]:
    """The source tree in this interpreter's venv."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "QT_QPA_PLATFORM": "offscreen"}
    return [sys.executable, "-m", "cnn_desktop", "gui", "--smoke-test", str(SMOKE_IMAGE)], env


def package_command(flavour: str, home: Path) -> tuple[list[str], dict[str, str]]:
    """The packaged app, as a user without Python starts it."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    exe = app_folder(flavour) / "cnn-desktop"
    return [str(exe), "gui", "--smoke-test", str(SMOKE_IMAGE)], env


def ensure_model_cached() -> None:
    """Export the built-in model into the venv's cache first, so neither side exports it."""
    code = "from cnn_desktop.core.models import default_model_bundle; default_model_bundle()"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=600)


def start_up(flavours: list[str], runs: int) -> dict:
    """Median seconds to each stage, venv and every flavour, interleaved; ratios to the venv."""
    samples: dict[str, list[dict[str, float]]] = {"venv": [], **{f: [] for f in flavours}}
    with tempfile.TemporaryDirectory(prefix="cnn-desktop-bench-package-") as scratch:
        for run in range(runs):
            samples["venv"].append(launch(*venv_command()))
            for flavour in flavours:
                home = Path(scratch) / f"home-{flavour}-{run}"
                home.mkdir()
                samples[flavour].append(launch(*package_command(flavour, home)))
    report: dict = {"runs": runs}
    for kind, records in samples.items():
        report[kind] = {stage: statistics.median(r[stage] for r in records) for stage in STAGES} | {
            "all": records
        }
    for flavour in flavours:
        report[f"{flavour}_over_venv"] = {
            stage: round(report[flavour][stage] / report["venv"][stage], 2) for stage in STAGES
        }
    return report


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (links not followed)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def sizes(flavour: str) -> dict:
    """Unpacked and compressed sizes of a built flavour, in MB, and its largest parts."""
    folder = app_folder(flavour)
    internal = folder / "_internal"
    suffix = "" if flavour == "lite" else "-full"
    parts = [p for p in internal.iterdir() if p.name != "PySide6"]
    parts += list((internal / "PySide6").iterdir()) if (internal / "PySide6").is_dir() else []
    measured = {
        str(p.relative_to(folder)): folder_bytes(p) if p.is_dir() else p.lstat().st_size
        for p in parts
    }
    largest = sorted(measured.items(), key=lambda item: -item[1])[:10]
    dist = REPO_ROOT / "dist"
    tarballs = list(dist.glob(f"cnn-desktop{suffix}-[0-9]*-linux-*.tar.gz"))
    debs = list(dist.glob(f"cnn-desktop{suffix}_*.deb"))
    return {
        "unpacked_mb": round(folder_bytes(folder) / 1e6, 1),
        "tar_gz_mb": round(tarballs[0].stat().st_size / 1e6, 1) if tarballs else None,
        "deb_mb": round(debs[0].stat().st_size / 1e6, 1) if debs else None,
        "largest_parts_mb": {name: round(size / 1e6, 1) for name, size in largest},
    }


def main() -> None:
    """Measure, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="launches per kind")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    built = [f for f in FLAVOURS if (app_folder(f) / "cnn-desktop").exists()]
    if not built:
        raise SystemExit("bench_package: no packaged app in build/: run `make package` first")
    ensure_model_cached()
    report = {
        "benchmark": "package",
        "image": SMOKE_IMAGE.name,
        "start_up_s": start_up(built, args.runs),
        "sizes": {flavour: sizes(flavour) for flavour in built},
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
