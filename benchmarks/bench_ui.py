"""How the window feels: event-loop stalls while it works, and how fast it starts.

1. Responsiveness. The real :class:`MainWindow` (isolated settings) classifies a folder of
   500 photos; during the batch the Feature Maps tab computes a few layers of the selected
   image and the class-activation map is switched on. A 5 ms timer on the UI thread records
   the gap between its consecutive timeouts; the same probe over the idle window for as long
   is the baseline. Stalls over 50 ms are attributed: a watchdog thread samples every
   thread's Python stack (``sys._current_frames``) while the UI thread has not answered for
   40 ms, and the CPU time the UI thread, the process and the machine used during each gap
   tells a busy UI thread from one waiting for the GIL (or for a core other processes took).
2. Cold start, in fresh processes (median of 3 after one discarded warm-up each): (a) a bare
   PySide6 QMainWindow to its first paint, (b) cnn-desktop's window to its first paint,
   (c) cnn-desktop to the first prediction for one image passed at start (model cached).
   Whether torch was imported at (b) and (c) is reported (the GUI path must not import it).

Figures are reported with their targets; nothing is asserted.

Run: ``.venv/bin/python -m benchmarks.bench_ui [--out FILE] [--count 500]``
"""

from __future__ import annotations

import argparse
import itertools
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
SAMPLER_LATE_S = 0.030  # the sampler itself this late: the GIL was held elsewhere
UI_BUSY_SHARE = 0.3  # the UI thread used this share of a gap's time: it was the one busy
PROFILE_S = 2.0  # how long the diagnostic pass profiles the UI thread's Python callbacks
WAIT_TIMEOUT_S = 300.0
HEAVY_MODULES = ("torch", "torchvision", "timm")
IDLE_FRAMES = frozenset({"wait", "_wait_for_tstate_lock", "get", "result"})  # threads waiting
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# ----- event-loop probe and stall sampler -------------------------------------------------
class EventLoopProbe:
    """A timer on the UI thread firing every few ms; the gaps between its timeouts, and the
    CPU time the UI thread, this process and the whole machine used in between."""

    def __init__(self, interval_ms: int = PROBE_INTERVAL_MS) -> None:
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.ticks: list[float] = []
        self.cpu: list[tuple[float, float, float]] = []  # UI thread, process, machine busy
        self.last_tick = 0.0  # read by the sampler thread

    def _tick(self) -> None:
        now = time.perf_counter()
        self.ticks.append(now)
        self.cpu.append((time.thread_time(), time.process_time(), _machine_busy_s()))
        self.last_tick = now

    def start(self) -> None:
        self.ticks, self.cpu = [], []
        self._tick()
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        self.last_tick = 0.0
        return self.ticks


def _machine_busy_s() -> float:
    """CPU seconds every core of the machine has been busy since boot (Linux; else 0)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


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


def _where(code) -> str:
    path = Path(code.co_filename)
    try:
        shown = str(path.relative_to(REPO_ROOT))
    except ValueError:
        shown = "/".join(path.parts[-2:])
    return shown


def _stack(frame, limit: int = 8) -> list[str]:
    lines = []
    while frame is not None and len(lines) < limit:
        lines.append(f"{_where(frame.f_code)}:{frame.f_lineno} {frame.f_code.co_name}")
        frame = frame.f_back
    return lines  # innermost first


def _code_name(code) -> str:
    name = getattr(code, "co_qualname", code.co_name)
    return f"{_where(code)}:{code.co_firstlineno} {name}"


class StallSampler(threading.Thread):
    """While the UI thread is late (or this thread itself woke late: the GIL was held), samples
    every thread's Python stack, so each stall can be put down to the code that caused it."""

    def __init__(self, probe: EventLoopProbe) -> None:
        super().__init__(name="stall-sampler", daemon=True)
        self.probe = probe
        self.main = threading.main_thread()
        self.samples: list[dict] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        woke = time.perf_counter()
        while not self.stopped.wait(SAMPLE_PERIOD_S):
            now = time.perf_counter()
            sampler_late = now - woke - SAMPLE_PERIOD_S  # > 0 mostly while the GIL was held
            woke = now
            last = self.probe.last_tick
            ui_late = now - last if last else 0.0
            if ui_late < SAMPLE_AFTER_S and sampler_late < SAMPLER_LATE_S:
                continue
            frames = sys._current_frames()
            names = {t.ident: t.name for t in threading.enumerate()}
            self.samples.append(
                {
                    "at": now,
                    "ui_late_ms": round(ui_late * 1000, 1),
                    "sampler_late_ms": round(sampler_late * 1000, 1),
                    "ui_stack": _stack(frames.get(self.main.ident)),
                    "others": {
                        str(names.get(ident, ident)): _stack(frame, 3)
                        for ident, frame in frames.items()
                        if ident not in (self.main.ident, self.ident)
                        and frame.f_code.co_name not in IDLE_FRAMES
                    },
                }
            )


def attribute_stalls(probe: EventLoopProbe, samples: list[dict], origin: float) -> list[dict]:
    """Each probe gap over 50 ms with what was seen during it, longest first.

    The CPU time the UI thread used during the gap says whether it was busy itself (its
    stack shows where; only the event loop's frame means Qt's own C++ code) or waiting. A
    waiting UI thread while the sampler thread was late too means no Python thread could run:
    some thread held the GIL in one long C call (the other threads' stacks show which), unless
    other processes took the CPU (their CPU time is given).
    """
    stalls = []
    ticks, cpu = probe.ticks, probe.cpu
    for i, (before, after) in enumerate(itertools.pairwise(ticks)):
        gap_ms = (after - before) * 1000
        if gap_ms <= STALL_MS:
            continue
        used = zip(cpu[i], cpu[i + 1], strict=True)
        ui_ms, process_ms, machine_ms = ((b - a) * 1000 for a, b in used)
        others_ms = max(0.0, machine_ms - process_ms)
        seen = [s for s in samples if before < s["at"] <= after + SAMPLE_AFTER_S / 2]
        sampler_late = max((s["sampler_late_ms"] for s in seen), default=0.0)
        busy_ui = [s for s in seen if s["ui_late_ms"] >= SAMPLE_AFTER_S * 1000]
        where = _project_frame((busy_ui or seen)[0]["ui_stack"]) if seen else "(not sampled)"
        if ui_ms >= UI_BUSY_SHARE * gap_ms:
            verdict = f"UI thread busy ({ui_ms:.0f} ms CPU) in {where}; see ui_callbacks"
        elif sampler_late >= SAMPLER_LATE_S * 1000:
            verdict = (
                f"UI thread waiting ({ui_ms:.0f} ms CPU); no Python thread ran for "
                f"{sampler_late:.0f} ms: the GIL was held in a C call by one of other_threads"
            )
        else:
            verdict = f"UI thread waiting ({ui_ms:.0f} ms CPU) for the GIL or a CPU core"
        if others_ms >= 0.5 * gap_ms:
            verdict += f"; other processes used {others_ms:.0f} ms CPU meanwhile (disturbed)"
        stall = {
            "at_s": round(before - origin, 3),
            "gap_ms": round(gap_ms, 1),
            "verdict": verdict,
            "ui_thread_cpu_ms": round(ui_ms, 1),
            "process_cpu_ms": round(process_ms, 1),
            "other_processes_cpu_ms": round(others_ms),
            "samples": len(seen),
        }
        if seen:
            stall["sampler_blocked_ms"] = sampler_late
            stall["ui_stack"] = (busy_ui or seen)[0]["ui_stack"][:3]
            stall["other_threads"] = seen[0]["others"]
        stalls.append(stall)
    return sorted(stalls, key=lambda s: -s["gap_ms"])


def _project_frame(stack: list[str]) -> str:
    """The innermost frame in cnn-desktop's code; none means Qt's own C++ code (or a wait)."""
    project = [f for f in stack if f.startswith("cnn_desktop")]
    return (
        project[0]
        if project
        else "Qt (no cnn_desktop frame caught: Qt's C++ code or short callbacks)"
    )


def hotspots(samples: list[dict]) -> list[dict]:
    """Where the UI thread was over every sample taken while it was late, and whether the
    GIL was held elsewhere at the time."""
    where: Counter[str] = Counter()
    for sample in samples:
        if sample["ui_late_ms"] >= SAMPLE_AFTER_S * 1000:
            held = sample["sampler_late_ms"] >= SAMPLER_LATE_S * 1000
            where[
                _project_frame(sample["ui_stack"]) + (" [GIL held elsewhere]" if held else "")
            ] += 1
    return [{"ui_frame": frame, "samples": n} for frame, n in where.most_common(8)]


class CallbackProfiler:
    """Times each Python callback Qt makes on the UI thread (slots, model ``data()``, paint
    events...) with sys.setprofile; it slows the UI thread down, so it runs in a pass of its
    own. Many short callbacks from one Qt operation (a view asking ``data()`` of every row)
    show up as many calls inside one stall."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float, str]] = []  # start, seconds, callback
        self._top = None
        self._started = 0.0
        self._names: dict = {}

    def hook(self, frame, event: str, _arg) -> None:
        if event == "call" and self._top is None:
            code = frame.f_code
            if code.co_filename != __file__ and (
                frame.f_back is None or frame.f_back.f_code.co_filename == __file__
            ):  # called by Qt from the event loop this script runs (or by this script)
                self._top, self._started = frame, time.perf_counter()
        elif event == "return" and frame is self._top:
            code = frame.f_code
            name = self._names.get(code) or self._names.setdefault(code, _code_name(code))
            self.calls.append((self._started, time.perf_counter() - self._started, name))
            self._top = None

    def report(self, ticks: list[float], top: int = 5) -> dict:
        """The callbacks that took the most time inside the probe's gaps over 50 ms, and the
        slowest single callbacks."""
        stalls = [(a, b) for a, b in itertools.pairwise(ticks) if (b - a) * 1000 > STALL_MS]
        inside: dict[str, list[float]] = {}
        for started, seconds, name in self.calls:
            if any(a < started < b for a, b in stalls):
                entry = inside.setdefault(name, [0, 0.0])
                entry[0] += 1
                entry[1] += seconds * 1000
        stalled_ms = sum((b - a) * 1000 for a, b in stalls)
        ranked = sorted(inside.items(), key=lambda item: -item[1][1])[:top]
        slowest: dict[str, float] = {}
        for _started, seconds, name in self.calls:
            slowest[name] = max(slowest.get(name, 0.0), seconds * 1000)
        return {
            "stalls_over_50ms": len(stalls),
            "stalled_ms": round(stalled_ms),
            "callbacks_inside_stalls": [
                {
                    "callback": name,
                    "calls_per_stall": round(calls / len(stalls)),
                    "ms_per_stall": round(ms / len(stalls), 1),
                    "share_of_stalled_time": round(ms / stalled_ms, 2),
                }
                for name, (calls, ms) in ranked
            ],
            "slowest_single_callbacks_ms": {
                name: round(ms, 1)
                for name, ms in sorted(slowest.items(), key=lambda item: -item[1])[:top]
            },
        }


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


def probe_report(
    probe: EventLoopProbe, sampler: StallSampler, origin: float, stalls_shown: int
) -> dict:
    """Gap statistics of the probe's last run, its longest stalls attributed, and where the
    UI thread was while late (the sampler's samples are used up)."""
    report = gap_stats(probe.ticks)
    report["load_average_1min"] = round(os.getloadavg()[0], 2)
    report["stalls"] = attribute_stalls(probe, sampler.samples, origin)[:stalls_shown]
    report["ui_thread_while_late"] = hotspots(sampler.samples)
    sampler.samples.clear()
    return report


def profile_callbacks(window, folder: Path, probe: EventLoopProbe) -> dict:
    """Classify the folder again with the UI thread's Python callbacks profiled for a while."""
    window.clear_images()
    wait_until(lambda: not window.runner.active, "the runner to be idle")
    profiler = CallbackProfiler()
    probe.start()
    sys.setprofile(profiler.hook)
    try:
        window.add_inputs([folder])
        idle_for(PROFILE_S)
    finally:
        sys.setprofile(None)
        probe.stop()
    window.cancel_classification()
    wait_until(lambda: not window.runner.active, "the runner to be idle")
    return profiler.report(probe.ticks)


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
    probe.stop()
    startup = probe_report(probe, sampler, origin, stalls_shown=5)

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
    probe.stop()
    busy = probe_report(probe, sampler, started, stalls_shown=6)
    failed = sum(e.error is not None for e in window.results.entries())

    idle_for(0.5)  # let the last repaints settle
    probe.start()
    idle_for(busy["seconds"])
    probe.stop()
    idle = probe_report(probe, sampler, probe.ticks[0], stalls_shown=3)
    sampler.stopped.set()
    callbacks = profile_callbacks(window, folder, probe) if busy["gaps_over_50ms"] else {}
    window.close()
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
        "ui_callbacks": {
            "what": f"Python callbacks on the UI thread over the first {PROFILE_S:.0f} s of "
            "the same batch run again under a profiler (only when stalls were found; the "
            "profiler slows callbacks down: compare them with each other only)",
            **callbacks,
        },
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
            args = {"bare": [], "app": [settings], "predict": [settings, image]}[mode]
            record = launch(mode, *map(str, args))
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
    """Build the default model's bundle (needs torch) in a child: this process stays torch-free."""
    code = "from cnn_desktop.core.models import default_model_bundle; default_model_bundle()"
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
