"""Backbone embeddings for head-only training, computed once and cached on disk.

The embedding of an image is the pooled feature vector that feeds the classifier of a
pretrained bundle (the tensor flowing into its final ``Gemm``). It runs on ONNX Runtime
through the same batched pipeline as classification. The cache is keyed by the file's
content, the model and its preprocessing, so renaming or moving images keeps it warm and
editing one invalidates only that image. :func:`prune_cache` keeps it under a size limit,
least recently used entries first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from cnn_desktop.core.imaging.files import atomic_write, file_digest, prune_folder
from cnn_desktop.core.inference.backends.onnx import create_session, session_options
from cnn_desktop.core.inference.devices import cpu_threads
from cnn_desktop.core.inference.predict import (
    CPU_BATCH_SIZE,
    GPU_BATCH_SIZE,
    run_on_paths,
)
from cnn_desktop.core.models.bundle import ModelBundle
from cnn_desktop.core.models.unknown import embedding_tensor, embedding_width
from cnn_desktop.core.tasks import CancelToken, ProgressCallback, no_progress

DEFAULT_CACHE_LIMIT_BYTES = 2 * 1024**3


class EmbeddingModel:
    """An ONNX Runtime session returning a bundle's embeddings (``notice``: see
    :func:`~cnn_desktop.core.inference.backends.onnx.create_session`)."""

    def __init__(self, bundle: ModelBundle, device: str = "auto") -> None:
        proto = onnx.load(str(bundle.onnx_path))
        self.spec = bundle.spec
        self.tensor = embedding_tensor(proto)
        if self.tensor not in {o.name for o in proto.graph.output}:
            proto.graph.output.append(onnx.ValueInfoProto(name=self.tensor))
        self.session, self.notice = create_session(
            proto.SerializeToString(), session_options(1), device
        )
        self.uses_gpu = self.session.get_providers()[0] != "CPUExecutionProvider"
        self.width = embedding_width(proto)
        self.key = self._model_key(bundle)

    def _model_key(self, bundle: ModelBundle) -> str:
        spec = bundle.spec.to_dict()
        identity = {
            "provenance": spec["provenance"],
            "architecture": spec["architecture"],
            "tensor": self.tensor,
            "preprocessing": {
                k: spec[k]
                for k in ("input_size", "channels", "mean", "std", "interpolation", "resize_mode")
            }
            | {"crop_fraction": spec["crop_fraction"]},
        }
        text = json.dumps(identity, sort_keys=True).encode()
        return hashlib.blake2b(text, digest_size=12).hexdigest()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        output = self.session.run([self.tensor], {self.spec.input_name: batch})[0]
        return np.asarray(output, np.float32).reshape(len(batch), -1)


class EmbeddingCache:
    """``folder/<model key>/<content hash>.npy`` files, written atomically."""

    def __init__(self, folder: Path, model_key: str) -> None:
        self.folder = Path(folder) / model_key
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        """The cached embedding, or None (a damaged entry counts as missing)."""
        path = self._path(digest)
        try:
            vector = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        return vector

    def put(self, digest: str, vector: np.ndarray) -> None:
        """Store an embedding (atomically: never a half-written file)."""
        with atomic_write(self._path(digest)) as out:
            np.save(out, np.asarray(vector, np.float32), allow_pickle=False)


def prune_cache(folder: Path, max_bytes: int = DEFAULT_CACHE_LIMIT_BYTES) -> list[Path]:
    """Delete the least recently used embeddings under ``folder`` (every model's) until the
    rest take at most ``max_bytes``; returns the files deleted, oldest first."""
    deleted = prune_folder(folder, max_bytes=max_bytes, pattern="*/*/*.npy")
    for shard in {path.parent for path in deleted}:
        with contextlib.suppress(OSError):
            shard.rmdir()  # only when it became empty
    return deleted


def embed_paths(
    paths: Sequence[Path],
    model: EmbeddingModel,
    cache: EmbeddingCache | None,
    *,
    known_digests: Mapping[Path, bytes] | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> Iterator[tuple[Path, np.ndarray | None, str | None]]:
    """(path, embedding or None, error or None) for each path, in order; cached ones are free.

    ``known_digests`` (e.g. ``ScanReport.digests``, which the dataset scan computed anyway)
    spares reading the files a second time to find them in the cache.
    """
    digests: dict[Path, str] = {}
    found: dict[Path, np.ndarray] = {}
    for path in paths:
        try:
            known = (known_digests or {}).get(path)
            digests[path] = digest = (known or file_digest(path)).hex()
        except OSError:
            digests[path] = ""  # unreadable: reported below
            continue
        vector = cache.get(digest) if cache is not None else None
        if vector is not None:
            found[path] = vector
    missing = [p for p in paths if p not in found and digests[p]]
    batch = GPU_BATCH_SIZE if model.uses_gpu else CPU_BATCH_SIZE
    # Computed rows come in the order of ``missing``: each is handed on (and cached) as it
    # comes, never gathered, so memory does not grow with the number of images.
    computed = run_on_paths(
        missing,
        model.spec,
        model,
        batch_size=batch,
        progress=progress,
        cancel=cancel,
        workers=min(8, cpu_threads()),
    )
    for path in paths:
        if path in found:
            yield path, found[path], None
        elif not digests[path]:
            yield path, None, "file could not be read"
        else:
            raw = next(computed)
            if raw.output is not None and cache is not None:
                cache.put(digests[path], raw.output)
            yield path, raw.output, raw.error
