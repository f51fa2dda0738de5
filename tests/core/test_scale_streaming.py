"""What keeps memory flat at scale: paths are read a batch at a time, and embeddings are handed
on as they are computed, never gathered for the whole run first."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from cnn_desktop.core.inference.predict import run_on_paths
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.training.embeddings import embed_paths

SPEC = ModelSpec(name="x", architecture="unknown", class_names=("a", "b"), input_size=(8, 8))
IMAGES = 400


def write_images(folder: Path) -> list[Path]:
    """IMAGES hard links to one tiny PNG."""
    folder.mkdir()
    first = folder / "img_000.png"
    Image.new("RGB", (12, 10), (10, 200, 30)).save(first)
    paths = [first]
    for i in range(1, IMAGES):
        paths.append(folder / f"img_{i:03d}.png")
        os.link(first, paths[-1])
    return paths


class CountingModel:
    """Stands in for an EmbeddingModel: 4 zeros per image, counting its calls."""

    spec = SPEC
    uses_gpu = False

    def __init__(self) -> None:
        self.images = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.images += len(batch)
        return np.zeros((len(batch), 4), np.float32)


def test_run_on_paths_reads_a_generator_of_paths_a_few_batches_ahead(tmp_path: Path):
    paths = write_images(tmp_path / "images")
    pulled = 0

    def lazily() -> Iterator[Path]:
        nonlocal pulled
        for path in paths:
            pulled += 1
            yield path

    rows = run_on_paths(lazily(), SPEC, CountingModel(), batch_size=4, workers=2)
    first = next(rows)
    assert first.path == paths[0] and first.error is None
    assert pulled <= 3 * 4, "more paths were read than the batches in flight"
    assert len([first, *rows]) == IMAGES and pulled == IMAGES


def test_embed_paths_hands_on_the_first_embedding_before_computing_the_rest(tmp_path: Path):
    paths = write_images(tmp_path / "images")
    model = CountingModel()
    embeddings = embed_paths(paths, model, None)  # type: ignore[arg-type]
    path, vector, error = next(embeddings)
    assert (path, error) == (paths[0], None) and vector is not None and vector.shape == (4,)
    # At most one batch per worker (8 at most) and one more are in flight: 72 of 400 images.
    assert model.images <= 9 * 8, f"{model.images} of {IMAGES} embedded before the first came"
    rest = list(embeddings)
    assert [p for p, _, _ in rest] == paths[1:] and model.images == IMAGES
    assert all(v is not None and e is None for _, v, e in rest)
