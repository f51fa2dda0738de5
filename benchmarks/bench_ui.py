"""How the window feels: event-loop stalls while it works, and how fast it starts.

1. Responsiveness. The real :class:`MainWindow` (isolated settings) classifies a folder of
   500 photos; during the batch the Feature Maps tab computes a few layers of the selected
   image and the class-activation map is switched on. A 5 ms timer on the UI thread records
   the gap between its consecutive timeouts; the same probe over the idle window for as long
   is the baseline. Stalls over 50 ms are attributed: a watchdog thread samples every
   thread's Python stack (``sys._current_frames``) and the UI thread's scheduler state while
   the UI thread has not answered for 40 ms.
2. Cold start, in fresh processes (median of 3 after one discarded warm-up each): (a) a bare
   PySide6 QMainWindow to its first paint, (b) cnn-desktop's window to its first paint,
   (c) cnn-desktop to the first prediction for one image passed at start (model cached).
   Whether torch was imported at (b) and (c) is reported (the GUI path must not import it).

Figures are reported with their targets; nothing is asserted.

Run: ``.venv/bin/python -m benchmarks.bench_ui [--out FILE] [--count 500]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
BENCH_DIR = Path(tempfile.gettempdir()) / "cnn-desktop-bench"
# A cache of its own, so "model already cached" holds without touching the user's cache.
os.environ.setdefault("CNN_DESKTOP_CACHE_DIR", str(BENCH_DIR / "cache"))

from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from benchmarks.common import write_photo_set, write_report  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
PROBE_INTERVAL_MS = 5
STALL_MS = 50.0
SAMPLE_AFTER_S = 0.040  # the watchdog samples once the UI thread is this late
SAMPLE_PERIOD_S = 0.005
WAIT_TIMEOUT_S = 300.0
HEAVY_MODULES = ("torch", "torchvision", "timm")


# ----- event-loop probe and stall sampler -------------------------------------------------
class EventLoopProbe:
    """A timer on the UI thread firing every few ms; the gaps between its timeouts."""

    def __init__(self, interval_ms: int = PROBE_INTERVAL_MS) -> None:
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.ticks: list[float] = []
        self.last_tick = 0.0  # read by the sampler thread

    def _tick(self) -> None:
        now = time.perf_counter()
        self.ticks.append(now)
        self.last_tick = now

    def start(self) -> None:
        self.ticks = []
        self.last_tick = time.perf_counter()
        self.ticks.append(self.last_tick)
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        self.last_tick = 0.0
        return self.ticks


def gap_stats(ticks: list[float]) -> dict:
    """Max, percentiles and count of long gaps between probe timeouts (ms)."""
    gaps = np.diff(np.asarray(ticks)) * 1000.0
    if not len(gaps):
        return {"ticks": len(ticks)}
    long = gaps[gaps > STALL_MS]
    return {
        "seconds": round(ticks[-1] - ticks[0], 3),
        "ticks": len(ticks),
        "max_gap_ms": round(float(gaps.max()), 1),
        "p50_gap_ms": round(float(np.percentile(gaps, 50)), 2),
        "p99_gap_ms": round(float(np.percentile(gaps, 99)), 1),
        "gaps_over_50ms": len(long),
        "gaps_over_100ms": int((gaps > 100).sum()),
        "seconds_in_gaps_over_50ms": round(float(long.sum()) / 1000, 3),
    }


def _thread_states() -> dict[int, tuple[str, int]]:
    """Scheduler state (R running, S sleeping, ...) and CPU ticks of each thread (Linux)."""
    states = {}
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            states[int(task)] = (fields[0], int(fields[11]) + int(fields[12]))
    except OSError:
        pass
    return states


def _stack(frame, limit: int = 8) -> list[str]:
    lines = []
    while frame is not None and len(lines) < limit:
        code = frame.f_code
        path = Path(code.co_filename)
        try:
            shown = str(path.relative_to(REPO_ROOT))
        except ValueError:
            shown = "/".join(path.parts[-2:])
        lines.append(f"{shown}:{frame.f_lineno} {code.co_name}")
        frame = frame.f_back
    return lines  # innermost first


class StallSampler(threading.Thread):
    """While the UI thread is late, samples every thread's Python stack and the UI thread's
    scheduler state, so each stall can be put down to the code that caused it."""

    def __init__(self, probe: EventLoopProbe) -> None:
        super().__init__(name="stall-sampler", daemon=True)
        self.probe = probe
        self.main = threading.main_thread()
        self.samples: list[dict] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_PERIOD_S):
            last = self.probe.last_tick
            now = time.perf_counter()
            if not last or now - last < SAMPLE_AFTER_S:
                continue
            frames = sys._current_frames()
            names = {t.ident: t.name for t in threading.enumerate()}
            native = {t.native_id: t.name for t in threading.enumerate()}
            states = _thread_states()
            others = {
                f"{names.get(ident, ident)}": _stack(frame, 4)
                for ident, frame in frames.items()
                if ident not in (self.main.ident, self.ident)
            }
            main_state = states.get(self.main.native_id, ("?", 0))
            self.samples.append(
                {
                    "stall_since": last,
                    "at": now,
                    "ui_stack": _stack(frames.get(self.main.ident)),
                    "ui_state": main_state[0],
                    "ui_cpu_ticks": main_state[1],
                    "others": others,
                    "running_threads": sorted(
                        native.get(tid, f"native-{tid}")
                        for tid, (state, _) in states.items()
                        if state == "R" and tid != self.native_id
                    ),
                }
            )


def attribute_stalls(ticks: list[float], samples: list[dict], origin: float) -> list[dict]:
    """Each probe gap over 50 ms with what the sampler saw during it, longest first."""
    by_start: dict[float, list[dict]] = {}
    for sample in samples:
        by_start.setdefault(sample["stall_since"], []).append(sample)
    stalls = []
    for before, after in zip(ticks, ticks[1:], strict=False):
        gap_ms = (after - before) * 1000
        if gap_ms <= STALL_MS:
            continue
        seen = by_start.get(before, [])
        ui_positions = Counter(s["ui_stack"][0] if s["ui_stack"] else "?" for s in seen)
        stall = {
            "at_s": round(before - origin, 3),
            "gap_ms": round(gap_ms, 1),
            "samples": len(seen),
            "ui_thread_states": "".join(s["ui_state"] for s in seen),
            "ui_innermost": dict(ui_positions.most_common(3)),
        }
        if seen:
            ticks_used = seen[-1]["ui_cpu_ticks"] - seen[0]["ui_cpu_ticks"]
            stall["ui_cpu_s_while_sampled"] = round(ticks_used / os.sysconf("SC_CLK_TCK"), 3)
            stall["ui_stack"] = seen[len(seen) // 2]["ui_stack"]
            stall["other_threads"] = seen[len(seen) // 2]["others"]
            stall["running_threads"] = seen[len(seen) // 2]["running_threads"]
        stalls.append(stall)
    return sorted(stalls, key=lambda s: -s["gap_ms"])


def hotspots(samples: list[dict]) -> list[dict]:
    """Where the UI thread was (innermost project frame) across every stall sample."""
    where: Counter[str] = Counter()
    for sample in samples:
        project = [f for f in sample["ui_stack"] if f.startswith(("cnn_desktop", "benchmarks"))]
        where[project[0] if project else (sample["ui_stack"] or ["<no Python frame>"])[0]] += 1
    return [{"frame": frame, "samples": n} for frame, n in where.most_common(8)]


# ----- driving the window -----------------------------------------------------------------
def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_TIMEOUT_S):
    """Run the event loop until ``condition()`` holds (checked every 10 ms)."""
    if condition():
        return
    loop = QEventLoop()
    deadline = time.perf_counter() + timeout_s
    check = QTimer()
    check.setInterval(10)
    check.timeout.connect(
        lambda: loop.quit() if condition() or time.perf_counter() > deadline else None
    )
    check.start()
    loop.exec()
    check.stop()
    if not condition():
        raise TimeoutError(f"gave up waiting for {what} after {timeout_s:.0f} s")


def idle_for(seconds: float) -> None:
    """Run the event loop for ``seconds`` with nothing else to do."""
    loop = QEventLoop()
    QTimer.singleShot(round(seconds * 1000), loop.quit)
    loop.exec()


def responsiveness(folder: Path, count: int, settings_file: Path) -> dict:
    from cnn_desktop.gui.main_window import MainWindow
    from cnn_desktop.gui.state import Settings

    settings_file.unlink(missing_ok=True)
    window = MainWindow(Settings(QSettings(str(settings_file), QSettings.Format.IniFormat)))
    probe = EventLoopProbe()
    sampler = StallSampler(probe)
    sampler.start()
    explain = window.explain
    features, prediction = explain.features, explain.prediction

    # Start-up: from show() until the model and its summary (layer list) are ready.
    window.show()
    probe.start()
    origin = probe.last_tick
    wait_until(lambda: window.active_model is not None, "the model")
    wait_until(lambda: features.layer_box.count() > 0, "the model summary")
    wait_until(lambda: not window.runner.active, "the runner to be idle")
    startup = {**gap_stats(probe.stop()), "stalls": attribute_stalls(probe.ticks, [], origin)}
    startup["stalls"] = attribute_stalls(probe.ticks, sampler.samples, origin)[:5]
    sampler.samples.clear()

    layers = [features.layer_box.itemText(i) for i in range(features.layer_box.count())]
    chosen = list(dict.fromkeys([features.layer, layers[1], layers[-1]]))
    last_result = [0.0]
    window.results.dataChanged.connect(lambda *_: last_result.__setitem__(0, time.perf_counter()))

    def selected_done() -> bool:
        entry = window.selected_entry()
        return entry is not None and not entry.pending

    def shows(layer: str) -> Callable[[], bool]:
        return lambda: features.result is not None and features.result.layer == layer

    marks: dict[str, float] = {}
    probe.start()
    started = probe.last_tick
    window.add_inputs([folder])
    wait_until(selected_done, "the selected image's result")
    marks["selected_image_classified"] = time.perf_counter() - started
    window.show_detail("features")
    for layer in chosen:
        if features.layer != layer:
            features.layer_box.setCurrentText(layer)
        wait_until(shows(layer), f"feature maps of {layer}")
        marks[f"feature_maps_shown: {layer}"] = time.perf_counter() - started
    window.show_detail("prediction")
    prediction.cam_toggle.setChecked(True)
    wait_until(lambda: prediction._heatmap is not None, "the class-activation map")
    marks["cam_shown"] = time.perf_counter() - started
    wait_until(
        lambda: (
            window.results.rowCount() == count
            and not any(e.pending for e in window.results.entries())
        ),
        "the batch",
    )
    batch_s = last_result[0] - started
    marks["last_result"] = batch_s
    wait_until(lambda: not window.runner.active, "the runner to be idle")
    busy_ticks = probe.stop()
    busy_samples = list(sampler.samples)
    sampler.samples.clear()
    failed = sum(e.error is not None for e in window.results.entries())

    idle_for(0.5)  # let the last repaints settle
    probe.start()
    idle_for(busy_ticks[-1] - busy_ticks[0])
    idle_ticks = probe.stop()
    idle_samples = list(sampler.samples)
    sampler.stopped.set()
    window.close()

    busy, idle = gap_stats(busy_ticks), gap_stats(idle_ticks)
    return {
        "images": count,
        "failed_images": failed,
        "probe_interval_ms": PROBE_INTERVAL_MS,
        "batch_seconds": round(batch_s, 3),
        "batch_images_per_s": round(count / batch_s, 1),
        "explain_done_during_batch": marks["cam_shown"] < batch_s,
        "feature_map_layers": chosen,
        "events_s": {k: round(v, 3) for k, v in marks.items()},
        "during_batch": busy,
        "idle_baseline": idle,
        "ratio_max_gap_batch_over_idle": round(busy["max_gap_ms"] / idle["max_gap_ms"], 2),
        "ratio_p99_gap_batch_over_idle": round(busy["p99_gap_ms"] / idle["p99_gap_ms"], 2),
        "target": f"no event-loop stall over {STALL_MS:.0f} ms during the batch",
        "target_met": busy["max_gap_ms"] <= STALL_MS,
        "stalls_during_batch": attribute_stalls(busy_ticks, busy_samples, started)[:12],
        "stall_hotspots_during_batch": hotspots(busy_samples),
        "stalls_idle": attribute_stalls(idle_ticks, idle_samples, idle_ticks[0])[:3],
        "startup_until_model_and_summary": startup,
    }


# ----- cold start -------------------------------------------------------------------------
def launch(mode: str, *args: str) -> dict:
    """Run ``benchmarks/bare_window.py MODE`` in a fresh process; seconds from launch to each
    stage it reports."""
    command = [sys.executable, "-m", "benchmarks.bare_window", mode, *args]
    launched = time.time()
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=180
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} child failed ({done.returncode}):\n{done.stderr[-2000:]}")
    record = json.loads(lines[-1])
    record["seconds"] = {k: round(t - launched, 3) for k, t in record.pop("times").items()}
    return record


def cold_start(image: Path, settings_dir: Path, runs: int) -> dict:
    modes = {
        "a_bare_qmainwindow": ("bare", "visible"),
        "b_app_window": ("app", "visible"),
        "c_first_prediction": ("predict", "first_prediction"),
    }
    records: dict[str, list[dict]] = {name: [] for name in modes}
    for run in range(runs + 1):  # run 0 warms the disk cache and is discarded
        for name, (mode, _stage) in modes.items():
            settings = settings_dir / f"{mode}-{run}.ini"
            settings.unlink(missing_ok=True)
            args = () if mode == "bare" else (str(settings), str(image))[: 1 + (mode == "predict")]
            record = launch(mode, *args)
            if run:
                records[name].append(record)

    def median(name: str, stage: str) -> float | None:
        values = [r["seconds"].get(stage) for r in records[name]]
        return round(statistics.median(values), 3) if None not in values else None

    report: dict = {"runs": runs, "medians_s": {}, "stages_median_s": {}}
    for name, (_mode, stage) in modes.items():
        report["medians_s"][name] = median(name, stage)
        stages = records[name][0]["seconds"]
        report["stages_median_s"][name] = {s: median(name, s) for s in stages}
    a, b = report["medians_s"]["a_bare_qmainwindow"], report["medians_s"]["b_app_window"]
    report["ratio_b_over_a"] = round(b / a, 2)
    report["runs_s"] = {
        name: [r["seconds"][stage] for r in records[name]] for name, (_m, stage) in modes.items()
    }
    predictions = records["c_first_prediction"]
    report["c_prediction"] = sorted(
        {str(r.get("prediction") or r.get("error")) for r in predictions}
    )
    loaded = {
        "b_at_visible": _any_loaded(records["b_app_window"], "modules_at_visible"),
        "c_at_first_prediction": _any_loaded(predictions, "modules_at_first_prediction"),
        "c_after_runner_idle": _any_loaded(predictions, "modules_after_idle"),
    }
    report["heavy_modules_loaded"] = loaded
    report["target"] = "torch, torchvision and timm are never imported on the GUI path"
    report["target_met"] = not any(any(v.values()) for v in loaded.values())
    return report


def _any_loaded(records: list[dict], key: str) -> dict[str, bool]:
    return {m: any(r.get(key, {}).get(m, False) for r in records) for m in HEAVY_MODULES}


def ensure_model_cached() -> None:
    """Build the default model's bundle (needs torch) in a child, so this process stays torch-free."""
    code = "from cnn_desktop.core.pretrained import default_model_bundle; default_model_bundle()"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True, timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3, help="cold starts measured per kind")
    parser.add_argument("--images", type=Path, default=BENCH_DIR)
    parser.add_argument("--skip-cold-start", action="store_true")
    args = parser.parse_args()

    ensure_model_cached()
    paths = write_photo_set(args.images / f"ui-0.3mp-{args.count}", args.count, (640, 480))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("cnn-desktop-bench")
    with tempfile.TemporaryDirectory(prefix="cnn-desktop-bench-ui-") as scratch:
        report: dict = {
            "benchmark": "ui",
            "qt_platform": app.platformName(),
            "cpu_threads": os.cpu_count(),
            "image_size": "640x480 JPEG",
        }
        report["responsiveness"] = responsiveness(
            paths[0].parent, len(paths), Path(scratch) / "settings.ini"
        )
        report["torch_imported_by_the_window_in_this_process"] = "torch" in sys.modules
        if not args.skip_cold_start:
            report["cold_start"] = cold_start(paths[0], Path(scratch), args.runs)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
