"""Batch classification speed: cnn-desktop's pipeline against the ONNX Runtime ceiling and a
naive per-image torch loop, measured in the same run on the same images.

(a) ``classify_paths`` (decode overlapped with batched ONNX Runtime inference)
(b) ONNX Runtime on pre-decoded tensors (the ceiling for inference alone)
(c) a naive loop: PIL open → torchvision transforms → torch eager model, one image at a time
(d) the built-in model's INT8 export (``cnn-desktop export --int8``) against fp32 on the small
    images: (a) for both in three alternating rounds (the median round is kept), (b) for both,
    and the ratios INT8 / fp32

Run: ``.venv/bin/python benchmarks/bench_classify.py [--out FILE] [--count 300] [--int8-only]``
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import throughput, write_photo_set, write_report
from cnn_desktop.core.export import export_model
from cnn_desktop.core.imaging import load_and_preprocess
from cnn_desktop.core.inference import (
    CPU_BATCH_SIZE,
    OnnxClassifier,
    classify_paths,
    cpu_threads,
    open_classifier,
)
from cnn_desktop.core.models import default_model_bundle, load_pretrained_model

SETS = {"12mp": (4000, 3000), "0.3mp": (640, 480)}
INT8_ROUNDS = 3


def naive_loop(paths: list[Path], model) -> None:
    """What a first script does: PIL → torchvision transforms → eager model, per image."""
    import torch
    from PIL import Image
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )
    with torch.no_grad():
        for path in paths:
            image = Image.open(path).convert("RGB")
            model(transform(image)[None]).softmax(-1)


def measure_set(name: str, paths: list[Path], classifier, torch_model, batch_size: int) -> dict:
    pipeline = throughput(
        len(paths), lambda: list(classify_paths(paths, classifier, batch_size=batch_size))
    )
    tensors = np.stack([load_and_preprocess(p, classifier.spec) for p in paths])
    batches = [tensors[i : i + batch_size] for i in range(0, len(tensors), batch_size)]
    # The ceiling is the better of ONNX Runtime's two ways to use every core on
    # pre-decoded tensors: one session with one thread per core, or one single-threaded
    # call per core at once (what the pipeline does).
    all_cores = OnnxClassifier(classifier.bundle, "cpu", threads=cpu_threads())
    all_cores.predict(batches[0])
    classifier.predict(batches[0])
    intra_op = throughput(len(paths), lambda: [all_cores.predict(b) for b in batches])
    with ThreadPoolExecutor(cpu_threads()) as pool:
        concurrent = throughput(len(paths), lambda: list(pool.map(classifier.predict, batches)))
    onnx_ceiling = max(intra_op, concurrent, key=lambda r: r["images_per_s"])
    naive = throughput(len(paths), lambda: naive_loop(paths, torch_model))
    return {
        "set": name,
        "a_pipeline": pipeline,
        "b_onnx_ceiling": onnx_ceiling,
        "b_onnx_one_session_all_threads": intra_op,
        "b_onnx_concurrent_single_thread_calls": concurrent,
        "c_naive_torch_loop": naive,
        "ratio_a_over_c": round(pipeline["images_per_s"] / naive["images_per_s"], 2),
        "ratio_a_over_b": round(pipeline["images_per_s"] / onnx_ceiling["images_per_s"], 2),
    }


def measure_int8(paths: list[Path], classifier, batch_size: int, images: Path) -> dict:
    """(d): export the built-in model to INT8, then time both models on the same images."""
    calibration = write_photo_set(images / "calibration-96", 96, (500, 375))
    exported = export_model(
        classifier.bundle,
        images / "lite0-int8",
        int8=True,
        calibration=calibration[0].parent,
        force=True,
    )
    int8 = open_classifier(exported.bundle, "onnx", "cpu")
    list(classify_paths(paths[:8], int8))  # warm-up
    models = {"fp32": classifier, "int8": int8}
    rows: dict[str, dict] = {name: {} for name in models}
    pipeline_rounds: dict[str, list[dict]] = {name: [] for name in models}
    for _ in range(INT8_ROUNDS):  # alternating, so both see the same machine load
        for name, model in models.items():
            results: list = []
            pipeline_rounds[name].append(
                throughput(
                    len(paths),
                    lambda model=model, results=results: results.extend(
                        classify_paths(paths, model, batch_size=batch_size)
                    ),
                )
            )
            rows[name]["top1"] = [r.predictions[0].index for r in results]
    for name, model in models.items():
        ordered = sorted(pipeline_rounds[name], key=lambda r: r["images_per_s"])
        rows[name]["a_pipeline"] = ordered[len(ordered) // 2]  # the median round
        rows[name]["a_pipeline_rounds_images_per_s"] = [
            r["images_per_s"] for r in pipeline_rounds[name]
        ]
        tensors = np.stack([load_and_preprocess(p, model.spec) for p in paths[:64]])
        batches = [tensors[i : i + batch_size] for i in range(0, len(tensors), batch_size)]
        with ThreadPoolExecutor(cpu_threads()) as pool:
            rows[name]["b_onnx_concurrent_single_thread_calls"] = throughput(
                len(tensors),
                lambda model=model, batches=batches: list(pool.map(model.predict, batches)),
            )
    top1 = [rows[n].pop("top1") for n in ("fp32", "int8")]
    return {
        "set": "0.3mp",
        "images": len(paths),
        **rows,
        "ratio_a_int8_over_fp32": round(
            rows["int8"]["a_pipeline"]["images_per_s"] / rows["fp32"]["a_pipeline"]["images_per_s"],
            2,
        ),
        "ratio_b_int8_over_fp32": round(
            rows["int8"]["b_onnx_concurrent_single_thread_calls"]["images_per_s"]
            / rows["fp32"]["b_onnx_concurrent_single_thread_calls"]["images_per_s"],
            2,
        ),
        "top1_agreement_on_these_images": round(float(np.mean(np.equal(*top1))), 3),
        "export_parity_report": exported.report,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=CPU_BATCH_SIZE)
    parser.add_argument(
        "--images", type=Path, default=Path(tempfile.gettempdir()) / "cnn-desktop-bench"
    )
    parser.add_argument("--int8-only", action="store_true", help="only (d), fp32 vs INT8")
    args = parser.parse_args()

    bundle = default_model_bundle()
    classifier = open_classifier(bundle, "onnx", "cpu")
    small = write_photo_set(args.images / f"0.3mp-{args.count}", args.count, SETS["0.3mp"])
    list(classify_paths(small[:8], classifier))  # warm-up
    int8 = measure_int8(small, classifier, args.batch_size, args.images)
    torch_model = None if args.int8_only else load_pretrained_model()
    results = []
    for name, size in {} if args.int8_only else SETS.items():
        paths = write_photo_set(args.images / f"{name}-{args.count}", args.count, size)
        list(classify_paths(paths[:8], classifier))  # warm-up: page cache and session
        results.append(measure_set(name, paths, classifier, torch_model, args.batch_size))
    write_report(
        {
            "benchmark": "classify",
            "cpu_threads": cpu_threads(),
            "provider": classifier.device,
            "batch_size": args.batch_size,
            "targets": {
                "12mp": "a >= 8x c",
                "0.3mp": "a >= 3x c and a >= 0.7x b",
                "int8": "a_int8 >= 1.5x a_fp32",
            },
            "results": results,
            "int8": int8,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
