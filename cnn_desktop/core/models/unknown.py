"""The unknown ("none of these") detector a trained model carries: what it holds and its file,
``unknown.safetensors`` in the bundle. numpy and safetensors only; fitting lives in
:mod:`cnn_desktop.core.training.unknown`, scoring in :mod:`cnn_desktop.core.inference.unknown`.

The detector works on what the model's ONNX graph computes: its calibrated probabilities and
its embedding, the tensor flowing into its final fully connected layer (see
:func:`embedding_tensor`), which the app adds as a second output when it runs the graph. The
file holds the L2-normalised embeddings of (a sample of) the training images and, in its
safetensors metadata, the numbers that turn two scores into one verdict. It is read like
every bundle file a hostile hand may have written: a regular file of bounded size, arrays of
the declared type and shape, finite numbers; anything else is one :class:`BundleError`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from cnn_desktop.core.imaging.files import NotARegularFileError, read_regular_file
from cnn_desktop.core.models.onnx_checks import BundleError

UNKNOWN_FILE = "unknown.safetensors"
METHOD = "max-softmax + k-NN cosine"
FORMAT_VERSION = 1
MAX_BANK_ROWS = 20_000
MAX_EMBEDDING_WIDTH = 65_536
MAX_NEIGHBOURS = 100
MAX_UNKNOWN_BYTES = 512 * 1024**2
_BANK = "bank"
_METADATA_KEY = "unknown"
_NUMBERS = ("softmax_center", "softmax_scale", "distance_center", "distance_scale", "threshold")


@dataclass(frozen=True, eq=False)
class UnknownDetector:
    """Two out-of-distribution scores, each scaled by its spread on the validation images,
    summed, and compared with a threshold set there.

    Attributes:
        bank: ``[M, D]`` float32 unit-length embeddings of training images (stored as
            float16: half the size, and the distances change by about 1e-3).
        neighbours: k of the k-NN distance (1 minus the cosine similarity of the k-th
            nearest training embedding).
        softmax_center: The median softmax score (1 minus the top probability) on validation.
        softmax_scale: Its 95th percentile minus its median there (positive).
        distance_center: The median k-NN distance on validation.
        distance_scale: Its 95th percentile minus its median there (positive).
        threshold: Images whose combined score is above it are unknown.
        keep_rate: The share of validation images the threshold keeps (not unknown).
        method: What the scores are (:data:`METHOD`).
    """

    bank: np.ndarray
    neighbours: int
    softmax_center: float
    softmax_scale: float
    distance_center: float
    distance_scale: float
    threshold: float
    keep_rate: float
    method: str = METHOD

    @property
    def width(self) -> int:
        """Length of the embeddings the detector compares."""
        return int(self.bank.shape[1])

    def describe(self) -> dict[str, Any]:
        """Its numbers as plain data (the file's metadata, and the spec of ``metrics.json``)."""
        return {
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "neighbours": self.neighbours,
            "bank_size": int(self.bank.shape[0]),
            **{name: float(getattr(self, name)) for name in _NUMBERS},
            "keep_rate": float(self.keep_rate),
        }

    def to_bytes(self) -> bytes:
        """The ``unknown.safetensors`` file."""
        from safetensors.numpy import save

        bank = np.ascontiguousarray(self.bank, np.float16)
        return save({_BANK: bank}, metadata={_METADATA_KEY: json.dumps(self.describe())})


def embedding_tensor(proto: onnx.ModelProto) -> str:
    """Name of the tensor feeding the classifier (the input of the last Gemm/MatMul).

    Raises:
        BundleError: The graph has no final fully connected layer.
    """
    for node in reversed(proto.graph.node):
        if node.op_type in ("Gemm", "MatMul"):
            return node.input[0]
    raise BundleError("this model has no final fully connected layer to take embeddings from")


def embedding_width(proto: onnx.ModelProto) -> int:
    """Length of the embedding (the classifier's input width); 0 when the graph hides it."""
    layer = next((n for n in reversed(proto.graph.node) if n.op_type in ("Gemm", "MatMul")), None)
    if layer is None or len(layer.input) < 2:
        return 0
    weight = next((t for t in proto.graph.initializer if t.name == layer.input[1]), None)
    if weight is None or len(weight.dims) != 2:
        return 0
    trans_b = next((a.i for a in layer.attribute if a.name == "transB"), 0)
    return int(weight.dims[1] if trans_b else weight.dims[0])


def read_detector(path: Path, proto: onnx.ModelProto) -> UnknownDetector:
    """Read and check the detector file of a bundle whose graph is ``proto``.

    Raises:
        BundleError: The file is not a regular file, too large, not safetensors, not a
            detector, or does not fit the graph's embedding.
    """
    where = f"{path.parent.name}/{path.name}"
    try:
        data = read_regular_file(path, MAX_UNKNOWN_BYTES)
    except NotARegularFileError as exc:
        raise BundleError(f"{where} is {exc.strerror}") from None
    except OSError as exc:
        raise BundleError(f"{where} is unreadable: {exc.strerror or exc}") from None
    try:
        detector = detector_from_bytes(data)
    except ValueError as exc:
        raise BundleError(f"{where} is not a valid unknown detector: {exc}") from None
    try:
        embedding_tensor(proto)
    except BundleError as exc:
        raise BundleError(f"{where} cannot be used: {exc}") from None
    width = embedding_width(proto)
    if width and width != detector.width:
        raise BundleError(
            f"{where} does not fit the model: it compares embeddings of {detector.width} "
            f"values, the model's have {width}"
        )
    return detector


def detector_from_bytes(data: bytes) -> UnknownDetector:
    """Parse an ``unknown.safetensors`` file.

    Raises:
        ValueError: With what is wrong.
    """
    metadata = _metadata(data)
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        arrays = load(data)
    except (SafetensorError, ValueError, OverflowError) as exc:
        raise ValueError(f"not a safetensors file ({exc})") from None
    bank = arrays.get(_BANK)
    if bank is None or set(arrays) != {_BANK}:
        raise ValueError(f"it must hold one array '{_BANK}', it holds {sorted(arrays)[:5]}")
    if bank.dtype != np.float16 or bank.ndim != 2:
        raise ValueError(f"'{_BANK}' must be a 2-D float16 array, not {bank.ndim}-D {bank.dtype}")
    rows, width = bank.shape
    if not 1 <= rows <= MAX_BANK_ROWS or not 1 <= width <= MAX_EMBEDDING_WIDTH:
        raise ValueError(
            f"'{_BANK}' is {rows}×{width}; at most {MAX_BANK_ROWS:,}×{MAX_EMBEDDING_WIDTH:,}"
        )
    if not np.isfinite(bank).all():
        raise ValueError(f"'{_BANK}' holds values that are not finite numbers")
    bank = bank.astype(np.float32)
    neighbours = metadata.get("neighbours")
    if type(neighbours) is not int or not 1 <= neighbours <= min(rows, MAX_NEIGHBOURS):
        most = min(rows, MAX_NEIGHBOURS)
        raise ValueError(f"'neighbours' must be a whole number from 1 to {most}")
    numbers = {}
    for name in (*_NUMBERS, "keep_rate"):
        value = metadata.get(name)
        if type(value) not in (int, float) or not math.isfinite(value):
            raise ValueError(f"'{name}' must be a finite number")
        numbers[name] = float(value)
    for name in ("softmax_scale", "distance_scale"):
        if numbers[name] <= 0:
            raise ValueError(f"'{name}' must be positive")
    if not 0 <= numbers["keep_rate"] <= 1:
        raise ValueError("'keep_rate' must be between 0 and 1")
    method = metadata.get("method")
    if method != METHOD:
        raise ValueError(f"method {str(method)[:60]!r} is not one this cnn-desktop knows")
    return UnknownDetector(bank=bank, neighbours=neighbours, method=method, **numbers)


def _metadata(data: bytes) -> dict[str, Any]:
    """The detector's numbers from the safetensors header (8-byte length, then JSON)."""
    if len(data) < 8:
        raise ValueError("the file is too short")
    length = int.from_bytes(data[:8], "little")
    if not 2 <= length <= min(len(data) - 8, 100 * 1024**2):
        raise ValueError("its header length is wrong")
    try:
        header = json.loads(data[8 : 8 + length])
        text = header["__metadata__"][_METADATA_KEY]
        metadata = json.loads(text)
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ValueError("its header has no detector metadata") from None
    if not isinstance(metadata, dict):
        raise ValueError("its metadata is not an object")
    version = metadata.get("format_version")
    if type(version) is not int or version < 1:
        raise ValueError("its 'format_version' is missing")
    if version > FORMAT_VERSION:
        raise ValueError(f"format {version} is newer than this cnn-desktop reads; update it")
    return metadata
