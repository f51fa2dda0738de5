"""Caches on disk stay within their limits: the oldest (least recently used) files go first."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from cnn_desktop.core.imaging.files import prune_folder
from cnn_desktop.core.training.embeddings import EmbeddingCache, prune_cache

DAY_S = 24 * 3600


def age(path: Path, days: float) -> Path:
    """Set ``path``'s modification time ``days`` back."""
    stamp = time.time() - days * DAY_S
    os.utime(path, (stamp, stamp))
    return path


def aged_file(path: Path, days: float, size: int = 1) -> Path:
    path.write_bytes(b"x" * size)
    return age(path, days)


def test_prune_folder_deletes_the_oldest_until_the_rest_fit(tmp_path: Path):
    for days in (3, 1, 5, 2, 4):  # written in no particular order of age
        aged_file(tmp_path / f"{days}-days.bin", days, size=100)

    deleted = prune_folder(tmp_path, max_bytes=250)

    assert [p.name for p in deleted] == ["5-days.bin", "4-days.bin", "3-days.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1-days.bin", "2-days.bin"]


def test_prune_folder_by_age_and_pattern_only(tmp_path: Path):
    old = aged_file(tmp_path / "pasted-old.png", 31)
    new = aged_file(tmp_path / "pasted-new.png", 29)
    other = aged_file(tmp_path / "keep.txt", 400)

    deleted = prune_folder(tmp_path, max_age_s=30 * DAY_S, pattern="pasted-*")

    assert deleted == [old]
    assert new.exists() and other.exists()
    assert prune_folder(tmp_path / "missing", max_bytes=0) == []


def test_embedding_cache_keeps_the_recently_used_within_its_limit(tmp_path: Path):
    cache = EmbeddingCache(tmp_path, "model-key")
    digests = [f"{i:02x}" * 16 for i in range(4)]
    for days, digest in zip((4, 3, 2, 1), digests, strict=True):
        cache.put(digest, np.full(1000, days, np.float32))
        age(tmp_path / "model-key" / digest[:2] / f"{digest}.npy", days)
    size = next(tmp_path.rglob("*.npy")).stat().st_size
    assert cache.get(digests[0]) is not None  # the oldest, used just now

    deleted = prune_cache(tmp_path, max_bytes=2 * size)

    assert [p.stem for p in deleted] == [digests[1], digests[2]], "least recently used first"
    assert [cache.get(d) is not None for d in digests] == [True, False, False, True]
    assert sum(p.stat().st_size for p in tmp_path.rglob("*.npy")) <= 2 * size
    assert not (tmp_path / "model-key" / digests[1][:2]).exists(), "emptied folders go too"
