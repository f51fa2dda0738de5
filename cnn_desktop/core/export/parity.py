"""How an INT8 model compares with the float model it came from, on held-out images.

Top-1 agreement (and top-5 containment) between the two, the accuracy of both when the
images' classes are known, the largest probability difference, and the speed ratio: both
models on the same batch, with the same threads (one, as each call of the classify pipeline
runs), timed in alternating rounds in the same run so neither gets a quieter machine.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import onnxruntime as ort

from cnn_desktop.core.inference.backends.base import softmax
from cnn_desktop.core.inference.backends.onnx import run_in_fixed_batches, session_options
from cnn_desktop.core.inference.predict import CPU_BATCH_SIZE
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.tasks import CancelToken, ProgressCallback, no_progress

TIMING_ROUNDS = 5
QUANTIZATION_FILE = "quantization.json"


class _Model:
    """One graph on the CPU with a fixed number of threads."""

    def __init__(self, model: bytes | str, spec: ModelSpec, threads: int, fixed: int | None):
        self.spec, self.fixed = spec, fixed
        self.session = ort.InferenceSession(
            model, session_options(threads), providers=["CPUExecutionProvider"]
        )

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        def run(chunk: np.ndarray) -> list[np.ndarray]:
            return self.session.run([self.spec.output_name], {self.spec.input_name: chunk})

        output = np.asarray(run_in_fixed_batches(run, batch, self.fixed)[0], np.float32)
        return output if self.spec.output_is_probability else softmax(output)

    def seconds(self, batch: np.ndarray) -> float:
        start = time.perf_counter()
        self.probabilities(batch)
        return time.perf_counter() - start


def parity_report(
    float_model: str,
    int8_model: bytes,
    spec: ModelSpec,
    images: np.ndarray,
    labels: np.ndarray | None,
    *,
    fixed_batch: int | None = None,
    threads: int = 1,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Compare the INT8 graph with the float one on held-out images.

    Args:
        float_model: Path of the float ONNX graph.
        int8_model: The serialized INT8 graph.
        spec: The models' spec (input, output, whether the output is probabilities).
        images: Preprocessed held-out images ``[N, C, H, W]``.
        labels: Their class indices, or None when unknown.
        fixed_batch: The graphs' fixed batch size, if any.
        threads: Intra-op threads of both sessions while timing.
        progress: Told what is being measured.
        cancel: Checked between batches.

    Returns:
        The report (JSON-ready): ``images``, ``top1_agreement``, ``top5_agreement``,
        ``max_probability_difference``, ``float_accuracy`` and ``int8_accuracy`` (None without
        labels), ``accuracy_change_points``, and ``speed`` (batch, threads, seconds per batch
        of each, ``int8_speedup``).
    """
    models = [_Model(m, spec, threads, fixed_batch) for m in (float_model, int8_model)]
    outputs: list[list[np.ndarray]] = [[], []]
    for start in range(0, len(images), CPU_BATCH_SIZE):
        if cancel is not None:
            cancel.raise_if_cancelled()
        progress(start / len(images), f"Comparing INT8 with float ({start}/{len(images)})…")
        batch = images[start : start + CPU_BATCH_SIZE]
        for model, found in zip(models, outputs, strict=True):
            found.append(model.probabilities(batch))
    float_probs, int8_probs = (np.concatenate(found) for found in outputs)
    float_top, int8_top = float_probs.argmax(1), int8_probs.argmax(1)
    top5 = np.argsort(-int8_probs, axis=1)[:, :5]
    report: dict[str, Any] = {
        "images": len(images),
        "top1_agreement": round(float((float_top == int8_top).mean()), 4),
        "top5_agreement": round(float((top5 == float_top[:, None]).any(1).mean()), 4),
        "max_probability_difference": round(float(np.abs(float_probs - int8_probs).max()), 4),
        "float_accuracy": None,
        "int8_accuracy": None,
        "accuracy_change_points": None,
    }
    if labels is not None:
        float_accuracy = float((float_top == labels).mean())
        int8_accuracy = float((int8_top == labels).mean())
        report["float_accuracy"] = round(float_accuracy, 4)
        report["int8_accuracy"] = round(int8_accuracy, 4)
        report["accuracy_change_points"] = round(100 * (int8_accuracy - float_accuracy), 2)
    progress(0.95, "Timing both models on the same batch…")
    report["speed"] = _speed(models, images[:CPU_BATCH_SIZE], threads, cancel)
    return report


def _speed(
    models: list[_Model], batch: np.ndarray, threads: int, cancel: CancelToken | None
) -> dict[str, Any]:
    """Median seconds per batch of each model, timed in alternating rounds."""
    for model in models:
        model.seconds(batch)  # warm-up: first-run allocations
    times: list[list[float]] = [[], []]
    for _ in range(TIMING_ROUNDS):
        if cancel is not None:
            cancel.raise_if_cancelled()
        for model, found in zip(models, times, strict=True):
            found.append(model.seconds(batch))
    float_s, int8_s = (statistics.median(found) for found in times)
    return {
        "batch": len(batch),
        "threads": threads,
        "float_s_per_batch": round(float_s, 5),
        "int8_s_per_batch": round(int8_s, 5),
        "int8_speedup": round(float_s / int8_s, 2),
    }


def report_lines(report: dict[str, Any]) -> list[str]:
    """The parity report as a few lines a person reads."""
    lines = [
        f"Held-out images: {report['images']} ({report.get('source', 'given images')})",
        f"Top-1 agreement with float: {report['top1_agreement']:.1%} "
        f"(float's top class in INT8's top 5: {report['top5_agreement']:.1%})",
    ]
    if report.get("float_accuracy") is not None:
        lines.append(
            f"Accuracy: float {report['float_accuracy']:.1%}, INT8 {report['int8_accuracy']:.1%}"
            f" ({report['accuracy_change_points']:+.1f} points)"
        )
    else:
        lines.append("Accuracy: not measured (the images' classes are unknown)")
    speed = report["speed"]
    lines += _recipe_lines(report)
    lines.append(
        f"Speed: INT8 {speed['int8_speedup']:.2f}x float ({speed['int8_s_per_batch'] * 1000:.0f} "
        f"vs {speed['float_s_per_batch'] * 1000:.0f} ms per batch of {speed['batch']}, "
        f"{speed['threads']} thread{'s' if speed['threads'] != 1 else ''})"
    )
    lines += _unknown_lines(report.get("unknown_detector"))
    return lines


def _unknown_lines(block: dict[str, Any] | None) -> list[str]:
    """What became of the unknown detector (nothing when the report predates it)."""
    if block is None:
        return []
    if not block["fitted"]:
        return [f"Unknown detector: none ({block['reason']})"]
    return [
        f"Unknown detector: fitted again on the INT8 model (bank of {block['bank_size']} "
        f"training images; keeps {block['validation_keep_rate']:.1%} of "
        f"{block['validation_images']} validation images)"
    ]


def _recipe_lines(report: dict[str, Any]) -> list[str]:
    """Which recipe was kept, and what the accuracy budget made of the ones tried."""
    recipe = report.get("quantization", {}).get("recipe", {}).get("name")
    budget = report.get("accuracy_budget")
    if recipe is None or budget is None:
        return []
    if not budget["checked"]:
        verdict = "not checked: the images' classes are unknown"
    else:
        tried = ", ".join(
            f"{a['recipe']} {a['accuracy_change_points']:+.1f}" for a in budget["attempts"]
        )
        verdict = f"{'met' if budget['met'] else 'NOT met'}; tried {tried} points"
        if not budget["met"]:
            verdict += f"; one image is {100 / report['images']:.2f} points of {report['images']}"
    return [f"Recipe: {recipe} (accuracy budget {budget['points']} points: {verdict})"]
