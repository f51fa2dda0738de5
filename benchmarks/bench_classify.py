"""Batch classification speed: cnn-desktop's pipeline against the ONNX Runtime ceiling and a
naive per-image torch loop, measured in the same run on the same images.

(a) ``classify_paths`` (decode overlapped with batched ONNX Runtime inference)
(b) ONNX Runtime on pre-decoded tensors (the ceiling for inference alone)
(c) a naive loop: PIL open → torchvision transforms → torch eager model, one image at a time

Run: ``.venv/bin/python benchmarks/bench_classify.py [--out FILE] [--count 300]``
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import throughput, write_photo_set, write_report
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=CPU_BATCH_SIZE)
    parser.add_argument(
        "--images", type=Path, default=Path(tempfile.gettempdir()) / "cnn-desktop-bench"
    )
    args = parser.parse_args()

    bundle = default_model_bundle()
    classifier = open_classifier(bundle, "onnx", "cpu")
    torch_model = load_pretrained_model()
    results = []
    for name, size in SETS.items():
        paths = write_photo_set(args.images / f"{name}-{args.count}", args.count, size)
        list(classify_paths(paths[:8], classifier))  # warm-up: page cache and session
        results.append(measure_set(name, paths, classifier, torch_model, args.batch_size))
    write_report(
        {
            "benchmark": "classify",
            "cpu_threads": cpu_threads(),
            "provider": classifier.device,
            "batch_size": args.batch_size,
            "targets": {"12mp": "a >= 8x c", "0.3mp": "a >= 3x c and a >= 0.7x b"},
            "results": results,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
