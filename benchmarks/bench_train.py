"""Training speed and memory, measured against baselines in the same run.

1. Head mode end to end on a 1,000-image, 10-class folder (``cnn-desktop train`` in a fresh
   process): embedding cache cold, then warm. Targets: ≤ 60 s cold, ≤ 10 s warm (2-core CPU).
2. Full mode images/s against a plain hand-written torch loop (PIL → torchvision transforms →
   the same model, AdamW, same batch size and images). Target: ≥ 0.9×.
3. Peak memory of head-mode training on 200 and on 1,000 images (features are streamed, so
   it should not grow with the dataset).

Run: ``.venv/bin/python -m benchmarks.bench_train [--out FILE]``
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

import numpy as np
from PIL import Image

from benchmarks.common import write_report

PHOTOS = (
    "chelsea",
    "coffee",
    "astronaut",
    "rocket",
    "immunohistochemistry",
    "camera",
    "coins",
    "brick",
    "grass",
    "hubble_deep_field",
)


def write_dataset(folder: Path, per_class: int, size: tuple[int, int] = (640, 480)) -> Path:
    """``per_class`` JPEG crops of each of 10 scikit-image photos, one folder per class."""
    from skimage import data

    marker = folder / f".complete-{per_class}"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(0)
    for name in PHOTOS:
        photo = Image.fromarray(getattr(data, name)()).convert("RGB")
        (folder / name).mkdir(parents=True)
        w, h = photo.size
        for i in range(per_class):
            cw, ch = int(w * rng.uniform(0.5, 1.0)), int(h * rng.uniform(0.5, 1.0))
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            crop = photo.crop((left, top, left + cw, top + ch)).resize(size)
            if i % 2:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            crop.save(folder / name / f"{name}_{i:04d}.jpg", quality=90)
    marker.touch()
    return folder


def timed_cli(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run ``cnn-desktop ARGS`` in a fresh process; wall time and stderr tail."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "cnn_desktop", *args], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"cnn-desktop {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def head_mode(data: Path, work: Path, env: dict[str, str]) -> dict:
    cache = Path(env["CNN_DESKTOP_CACHE_DIR"])
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from cnn_desktop.core.models import default_model_bundle as b; b()",
        ],
        env=env,
        check=True,
    )
    shutil.rmtree(cache / "embeddings", ignore_errors=True)
    args = ["train", str(data), "--out", str(work / "head"), "--mode", "head", "--quiet"]
    cold, _ = timed_cli(args, env)
    warm, message = timed_cli(args, env)
    return {
        "images": 1000,
        "classes": 10,
        "cold_seconds": round(cold, 2),
        "warm_seconds": round(warm, 2),
        "targets": {"cold_seconds": 60, "warm_seconds": 10},
        "met": cold <= 60 and warm <= 10,
        "last_message": message,
    }


def hand_written_loop(paths: list[tuple[Path, int]], batch_size: int, classes: int) -> float:
    """A plain torch fine-tuning loop; images per second over one pass."""
    import torch
    from torchvision import transforms

    from cnn_desktop.core.models import load_pretrained_model

    torch.manual_seed(0)
    model = load_pretrained_model()
    model.reset_classifier(classes)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    transform = transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )
    start = time.perf_counter()
    for i in range(0, len(paths), batch_size):
        chunk = paths[i : i + batch_size]
        inputs = torch.stack([transform(Image.open(p).convert("RGB")) for p, _ in chunk])
        labels = torch.tensor([label for _, label in chunk])
        optimizer.zero_grad()
        loss_fn(model(inputs), labels).backward()
        optimizer.step()
    return len(paths) / (time.perf_counter() - start)


def full_mode(data: Path, work: Path, per_class: int, batch_size: int) -> dict:
    from cnn_desktop.core.training import TrainConfig, train

    subset = work / "full-data"
    if not subset.exists():
        for folder in sorted(data.iterdir()):
            if folder.is_dir():
                (subset / folder.name).mkdir(parents=True)
                for path in sorted(folder.iterdir())[:per_class]:
                    os.link(path, subset / folder.name / path.name)
    config = TrainConfig(
        mode="full", epochs=1, batch_size=batch_size, augment=(), val_split=0.2, device="cpu"
    )
    rate = None
    train_items = None
    for event in train(subset, work / "full", config):
        if event.kind == "scan":
            train_items = event.data["split"].train
        if event.kind == "epoch":
            rate = event.images_per_s
    baseline = hand_written_loop(train_items, batch_size, 10)
    return {
        "train_images": len(train_items),
        "batch_size": batch_size,
        "cnn_desktop_images_per_s": round(rate, 2),
        "hand_written_loop_images_per_s": round(baseline, 2),
        "ratio": round(rate / baseline, 3),
        "target": ">= 0.9",
        "met": rate / baseline >= 0.9,
    }


MEMORY_SCRIPT = """
import resource, sys
from pathlib import Path
from cnn_desktop.core.training import TrainConfig
from cnn_desktop.core.training import train
for event in train(Path(sys.argv[1]), Path(sys.argv[2]), TrainConfig(mode="head", epochs=5)):
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def memory(data_small: Path, data_large: Path, work: Path, env: dict[str, str]) -> dict:
    peaks = {}
    for label, folder in (("200_images", data_small), ("1000_images", data_large)):
        cache = Path(env["CNN_DESKTOP_CACHE_DIR"]) / "embeddings"
        shutil.rmtree(cache, ignore_errors=True)
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, str(folder), str(work / f"mem-{label}")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[label] = int(out.stdout.strip().splitlines()[-1]) // 1024
    return {
        "peak_rss_mb": peaks,
        "ratio_1000_over_200": round(peaks["1000_images"] / peaks["200_images"], 3),
        "target": "flat (ratio close to 1)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--images", type=Path, default=Path(tempfile.gettempdir()) / "cnn-desktop-bench-train"
    )
    parser.add_argument("--full-per-class", type=int, default=16)
    parser.add_argument("--full-batch-size", type=int, default=16)
    args = parser.parse_args()
    data = write_dataset(args.images / "1000", 100)
    small = write_dataset(args.images / "200", 20)
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        env = dict(os.environ, CNN_DESKTOP_CACHE_DIR=str(work / "cache"))
        report = {
            "benchmark": "train",
            "head_mode": head_mode(data, work, env),
            "full_mode": full_mode(data, work, args.full_per_class, args.full_batch_size),
            "memory": memory(small, data, work, env),
        }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
