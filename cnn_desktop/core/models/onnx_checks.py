"""What an ONNX file must satisfy before cnn-desktop hands it to ONNX Runtime: a regular file
of sane size, external data only in files inside its own folder, tensors that hold the data
they declare (a header cannot make the runtime allocate terabytes), and inputs and outputs
that match the spec. Each failure is one :class:`BundleError` (it lives here so that both this
module and :mod:`cnn_desktop.core.models.bundle` raise it)."""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Iterator
from pathlib import Path

import onnx
from onnx import TensorProto

from cnn_desktop.core.imaging.files import NotARegularFileError, read_regular_file
from cnn_desktop.core.models.spec import ModelSpec

MAX_ONNX_BYTES = 2 * 1024**3
MAX_TENSOR_BYTES = 16 * 1024**3
"""All tensors a graph declares (initializers, sparse ones densified, constants), in total."""

_FOUR_BIT = ("INT4", "UINT4", "FLOAT4E2M1")
_BITS = {
    TensorProto.DOUBLE: 64,
    TensorProto.INT64: 64,
    TensorProto.UINT64: 64,
    TensorProto.COMPLEX64: 64,
    TensorProto.COMPLEX128: 128,
    TensorProto.FLOAT: 32,
    TensorProto.INT32: 32,
    TensorProto.UINT32: 32,
    TensorProto.FLOAT16: 16,
    TensorProto.BFLOAT16: 16,
    TensorProto.INT16: 16,
    TensorProto.UINT16: 16,
    **{
        getattr(TensorProto, n): 4
        for n in ("INT4", "UINT4", "FLOAT4E2M1")
        if hasattr(TensorProto, n)
    },
    **{getattr(TensorProto, n): 2 for n in ("INT2", "UINT2") if hasattr(TensorProto, n)},
}  # every other type: 8 bits (bytes, bools, 8-bit floats; strings count a byte each)
_TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data")


class BundleError(ValueError):
    """A model bundle or ONNX file cannot be used; the message says why."""


def load_onnx_proto(path: Path) -> onnx.ModelProto:
    """Read and check an ONNX file (its external data is checked, not loaded).

    Raises:
        BundleError: Not a regular file, empty, too large, not ONNX, or its external data
            or tensors are not what they claim.
    """
    try:
        data = read_regular_file(path, MAX_ONNX_BYTES)
    except NotARegularFileError as exc:
        raise BundleError(f"{path.name} is {exc.strerror}") from None
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            size = path.stat().st_size / 1e9
            raise BundleError(
                f"{path.name} is {size:.1f} GB, larger than cnn-desktop opens"
            ) from None
        raise BundleError(f"{path.name} is unreadable: {exc.strerror or exc}") from None
    if not data:
        raise BundleError(f"{path.name} is empty")
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises several unrelated types for garbage
        raise BundleError(f"{path.name} is not a valid ONNX model ({type(exc).__name__})") from None
    if not proto.graph.node:
        raise BundleError(f"{path.name} is not a valid ONNX model (empty graph)")
    check_external_data(proto, path.parent)
    check_tensor_sizes(proto, path)
    return proto


def check_external_data(proto: onnx.ModelProto, base: Path) -> None:
    """Every external-data file is a regular file inside ``base`` (links resolved), holding
    the bytes its tensor claims.

    Raises:
        BundleError: A location is absolute, leaves ``base`` (``..``, a symbolic link), is
            missing or not a regular file, or is shorter than offset + length.
    """
    root = base.resolve()
    for tensor in _all_tensors(proto.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        resolved = (root / location).resolve()
        if not location or os.path.isabs(location) or not resolved.is_relative_to(root):
            raise BundleError(
                f"ONNX weights point outside the model folder ('{location}'); refusing to load"
            )
        try:
            info = resolved.stat()
        except OSError:
            raise BundleError(f"ONNX external weights file '{location}' is missing") from None
        if not resolved.is_file():
            raise BundleError(f"ONNX external weights file '{location}' is not a regular file")
        offset, length = _external_span(entries, info.st_size, location)
        if offset + length > info.st_size:
            raise BundleError(
                f"ONNX tensor '{tensor.name}' claims {length:,} bytes at offset {offset:,} of "
                f"'{location}', a file of {info.st_size:,} bytes"
            )


def _external_span(entries: dict[str, str], file_size: int, location: str) -> tuple[int, int]:
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries["length"]) if "length" in entries else file_size - offset
    except ValueError:
        raise BundleError(
            f"ONNX external data for '{location}' has a bad offset or length"
        ) from None
    if offset < 0 or length < 0:
        raise BundleError(f"ONNX external data for '{location}' has a negative offset or length")
    return offset, length


def check_tensor_sizes(proto: onnx.ModelProto, path: Path) -> None:
    """Every tensor holds the values its dimensions declare, and all of them together fit
    in :data:`MAX_TENSOR_BYTES` (sparse initializers counted at their dense size, as the
    runtime makes them dense). Call after :func:`check_external_data`.

    Raises:
        BundleError: A tensor declares more values than it holds, or the total is too large.
    """
    total = 0
    for tensor in _all_tensors(proto.graph):
        declared = _declared_values(tensor, path)
        held = _held_values(tensor, path.parent)
        if declared > held:
            raise BundleError(
                f"{path.name}: tensor '{tensor.name}' declares {declared:,} values but holds "
                f"{held:,}; refusing to load"
            )
        total += declared * _BITS.get(tensor.data_type, 8) // 8
    for sparse in _all_sparse(proto.graph):
        dense = math.prod(sparse.dims) if all(d >= 0 for d in sparse.dims) else -1
        if dense < 0:
            raise BundleError(f"{path.name}: a sparse tensor has a negative dimension")
        total += dense * _BITS.get(sparse.values.data_type, 8) // 8
    if total > MAX_TENSOR_BYTES:
        raise BundleError(
            f"{path.name} declares {total / 1e9:,.1f} GB of weights, more than cnn-desktop "
            f"opens ({MAX_TENSOR_BYTES / 1e9:.0f} GB)"
        )


def _declared_values(tensor: TensorProto, path: Path) -> int:
    if any(d < 0 for d in tensor.dims):
        raise BundleError(f"{path.name}: tensor '{tensor.name}' has a negative dimension")
    return math.prod(tensor.dims)


def _held_values(tensor: TensorProto, base: Path) -> int:
    """How many values the tensor's data really holds (raw bytes, external bytes, or typed
    fields), however many its dimensions declare."""
    bits = _BITS.get(tensor.data_type, 8)
    if tensor.data_location == TensorProto.EXTERNAL:
        entries = {e.key: e.value for e in tensor.external_data}
        size = (base.resolve() / entries.get("location", "")).stat().st_size
        _offset, length = _external_span(entries, size, entries.get("location", ""))
        return length * 8 // bits
    if tensor.HasField("raw_data"):
        return len(tensor.raw_data) * 8 // bits
    stored = sum(len(getattr(tensor, name)) for name in _TYPED_FIELDS)
    stored += len(tensor.uint64_data)
    if tensor.data_type in (TensorProto.COMPLEX64, TensorProto.COMPLEX128):
        return stored // 2  # real and imaginary parts are stored one after the other
    return stored * max(1, 32 // bits) if bits < 8 else stored  # packed into int32s


def _subgraphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every graph nested in its nodes' attributes (If, Loop, Scan bodies)."""
    pending = [graph]
    while pending:
        current = pending.pop()
        yield current
        for node in current.node:
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    pending.append(attribute.g)
                pending.extend(attribute.graphs)


def _all_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    """Initializers, sparse tensors' parts and constant attributes, in every subgraph."""
    for current in _subgraphs(graph):
        yield from current.initializer
        for sparse in current.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        for node in current.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors
                for sparse in _attribute_sparse(attribute):
                    yield from (sparse.values, sparse.indices)


def _all_sparse(graph: onnx.GraphProto) -> Iterator[onnx.SparseTensorProto]:
    for current in _subgraphs(graph):
        yield from current.sparse_initializer
        for node in current.node:
            for attribute in node.attribute:
                yield from _attribute_sparse(attribute)


def _attribute_sparse(attribute: onnx.AttributeProto) -> list[onnx.SparseTensorProto]:
    single = [attribute.sparse_tensor] if attribute.HasField("sparse_tensor") else []
    return [*single, *attribute.sparse_tensors]


def static_dims(value_info: onnx.ValueInfoProto) -> list[int | None]:
    """Each dimension's size, None where it is symbolic or unknown (0 counts as unknown)."""
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]


def fixed_batch(in_dims: list[int | None], out_dims: list[int | None], path: Path) -> int | None:
    """The graph's fixed batch size, None when dynamic.

    An output declared with a fixed batch under a dynamic input (a sloppy export) is taken
    at its word: batches of that size are always safe.

    Raises:
        BundleError: Input and output declare different fixed batch sizes.
    """
    batch_in = in_dims[0] if in_dims else None
    batch_out = out_dims[0] if out_dims else None
    if batch_in is not None and batch_out is not None and batch_in != batch_out:
        raise BundleError(
            f"{path.name} takes batches of {batch_in} images but returns {batch_out} rows"
        )
    return batch_in if batch_in is not None else batch_out


def check_graph(proto: onnx.ModelProto, spec: ModelSpec, path: Path) -> int | None:
    """Check the graph against its spec; return its fixed batch size (None when dynamic).

    Raises:
        BundleError: Input or output names, shapes or class count disagree with the spec.
    """
    initializers = {t.name for t in proto.graph.initializer}
    inputs = {i.name: i for i in proto.graph.input if i.name not in initializers}
    outputs = {o.name: o for o in proto.graph.output}
    if spec.input_name not in inputs:
        raise BundleError(f"{path.name} has no input named '{spec.input_name}'")
    if spec.output_name not in outputs:
        raise BundleError(f"{path.name} has no output named '{spec.output_name}'")
    in_dims = static_dims(inputs[spec.input_name])
    expected = [spec.channels, *spec.input_size]
    if len(in_dims) != 4 or any(
        d is not None and d != e for d, e in zip(in_dims[1:], expected, strict=False)
    ):
        raise BundleError(f"{path.name} expects input {in_dims[1:]}, but its spec says {expected}")
    out_dims = static_dims(outputs[spec.output_name])
    if len(out_dims) != 2:
        raise BundleError(f"{path.name} output has shape {out_dims}; expected [batch, classes]")
    if out_dims[1] is not None and out_dims[1] != spec.num_classes:
        raise BundleError(
            f"{path.name} predicts {out_dims[1]} classes but its spec names {spec.num_classes}"
        )
    return fixed_batch(in_dims, out_dims, path)
