"""Model bundles: ``NAME.cnnmodel/`` folders holding ``model.onnx``, ``model.json``,
``weights.safetensors`` and ``unknown.safetensors`` (the unknown detector, for trained models),
and lone self-describing ``.onnx`` files.

Saves are atomic: the bundle is written complete in a hidden sibling folder, then swapped
in (:func:`~cnn_desktop.core.imaging.files.replace_folder`), so at every instant the name holds
the old or the new bundle; a previous copy left by a crash mid-swap is restored by the next
load. Loads validate everything a hostile or broken file could get wrong, and each failure is one
:class:`BundleError` with a clear message. Torch weights are only ever read through
safetensors, so a model file cannot run code.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from cnn_desktop.core.imaging.files import (
    SAVING_TAG,
    NotARegularFileError,
    folder_lock,
    new_sibling_folder,
    open_regular_file,
    read_regular_file,
    read_unchanging_folder,
    replace_folder,
    tidy_interrupted_replace,
)
from cnn_desktop.core.models.onnx_checks import (
    BundleError,
    check_graph,
    load_onnx_proto,
    static_dims,
)
from cnn_desktop.core.models.spec import (
    MAX_CLASSES,
    MAX_SPEC_BYTES,
    ONNX_METADATA_KEY,
    ModelSpec,
    SpecError,
)
from cnn_desktop.core.models.unknown import UNKNOWN_FILE, UnknownDetector, read_detector

BUNDLE_SUFFIX = ".cnnmodel"
ONNX_FILE = "model.onnx"
SPEC_FILE = "model.json"
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
WEIGHTS_FILE = "weights.safetensors"


@dataclass(frozen=True)
class ModelBundle:
    """A model on disk.

    Attributes:
        path: The bundle folder, or the lone ``.onnx`` file.
        spec: The validated model spec.
        onnx_path: The ONNX graph.
        weights_path: The safetensors weights for further training, when present.
        batch_size: The batch size the graph was exported with when it is fixed (a foreign
            model exported with input ``[1, 3, H, W]``), None when the batch is dynamic.
        unknown: The unknown ("none of these") detector fitted when the model was trained
            (``unknown.safetensors``), None when it has none (the built-in model, a lone
            ``.onnx`` file, a model trained before detectors existed).
    """

    path: Path
    spec: ModelSpec
    onnx_path: Path
    weights_path: Path | None
    batch_size: int | None = None
    unknown: UnknownDetector | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The model's display name."""
        return self.spec.name

    def read_json(self, file_name: str) -> Any:
        """Read an extra JSON file of the bundle (``history.json``, ``metrics.json``), or None."""
        if self.path.is_file():
            return None
        candidate = self.path / file_name
        if not candidate.is_file():
            return None
        try:
            return json.loads(read_regular_file(candidate, MAX_SPEC_BYTES).decode("utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise BundleError(
                f"{candidate.name} in {self.path.name} is unreadable: {exc}"
            ) from None


def embed_spec(model: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """Write the spec into the ONNX model's metadata (replacing any earlier one)."""
    kept = [p for p in model.metadata_props if p.key != ONNX_METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key = ONNX_METADATA_KEY
    entry.value = json.dumps(spec.to_dict(), ensure_ascii=False)
    return model


def save_bundle(
    path: str | os.PathLike[str],
    spec: ModelSpec,
    onnx_model: onnx.ModelProto | bytes,
    weights: Mapping[str, np.ndarray] | None = None,
    extra_json: Mapping[str, Any] | None = None,
    unknown: UnknownDetector | None = None,
) -> ModelBundle:
    """Write a bundle atomically and return it, validated.

    Args:
        path: Target folder; ``.cnnmodel`` is appended when missing.
        spec: The model spec (also embedded in the ONNX metadata).
        onnx_model: The ONNX graph, as a proto or serialized bytes.
        weights: Trainable weights as numpy arrays (saved with safetensors), if any.
        extra_json: Extra JSON files to write, by file name (``history.json`` ...).
        unknown: The unknown detector to store (``unknown.safetensors``), if any.

    Raises:
        BundleError: The model could not be written; any previous bundle is left intact.
    """
    target = _bundle_target(path)
    proto = onnx.load_from_string(onnx_model) if isinstance(onnx_model, bytes) else onnx_model
    embed_spec(proto, spec)
    existed = False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with folder_lock(target.parent):
            tidy_interrupted_replace(target)
            existed = os.path.lexists(target)
            _write_and_swap(target, spec, proto, weights, extra_json, unknown)
    except OSError as exc:
        raise BundleError(save_failure_message(target, exc, target if existed else None)) from exc
    return load_bundle(target)


def place_bundle(folder: str | os.PathLike[str], path: str | os.PathLike[str]) -> ModelBundle:
    """Move a complete bundle folder (written by :func:`save_bundle`, then checked) to
    ``path``, atomically replacing any bundle there, under the lock :func:`save_bundle` takes:
    a checked model is put in place without being written a second time.

    ``folder`` must be on the file system of ``path`` (a working folder beside it); after the
    call it is gone.

    Raises:
        BundleError: It could not be moved; any previous bundle at ``path`` is left intact.
    """
    target = _bundle_target(path)
    existed = False
    try:
        with folder_lock(target.parent):
            tidy_interrupted_replace(target)
            existed = os.path.lexists(target)
            replace_folder(Path(folder), target)
    except OSError as exc:
        raise BundleError(save_failure_message(target, exc, target if existed else None)) from exc
    return load_bundle(target)


def save_failure_message(target: Path, error: BaseException, previous: Path | None) -> str:
    """One line for a save of ``target`` that failed with ``error`` (``no space left on
    device while saving …``), naming the ``previous`` model it left unchanged, if any."""
    kept = f"the previous model at {previous} is unchanged" if previous else "nothing was saved"
    if isinstance(error, OSError) and error.errno in _NO_SPACE:
        return f"no space left on device while saving {target.name}; {kept}"
    reason = error.strerror if isinstance(error, OSError) and error.strerror else error
    return f"could not save model to {target}: {reason}; {kept}"


def _bundle_target(path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    if target.suffix != BUNDLE_SUFFIX:
        target = target.with_name(target.name + BUNDLE_SUFFIX)
    if target.exists() and not target.is_dir():
        raise BundleError(f"{target} exists and is not a model bundle folder")
    return target


def _write_and_swap(
    target: Path,
    spec: ModelSpec,
    proto: onnx.ModelProto,
    weights: Mapping[str, np.ndarray] | None,
    extra_json: Mapping[str, Any] | None,
    unknown: UnknownDetector | None = None,
) -> None:
    """Write the bundle into a fresh hidden sibling folder, then swap it in for ``target``.

    Folder and files are created like any others (the umask applies; it is never changed).
    """
    staging = new_sibling_folder(target, SAVING_TAG)
    try:
        _write_file(staging / ONNX_FILE, proto.SerializeToString())
        _write_file(staging / SPEC_FILE, spec.to_json().encode("utf-8"))
        if weights is not None:
            _write_weights(staging / WEIGHTS_FILE, weights)
        if unknown is not None:
            _write_file(staging / UNKNOWN_FILE, unknown.to_bytes())
        for file_name, content in (extra_json or {}).items():
            text = json.dumps(content, indent=2, ensure_ascii=False)
            _write_file(staging / Path(file_name).name, text.encode("utf-8"))
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_weights(path: Path, weights: Mapping[str, np.ndarray]) -> None:
    from safetensors.numpy import save

    try:
        contiguous = {k: np.ascontiguousarray(v) for k, v in weights.items()}
        data = save(contiguous, metadata={"format": "np"})
    except Exception as exc:  # safetensors raises its own error type
        raise OSError(f"weights could not be written: {exc}") from exc
    _write_file(path, data)  # like every file of the bundle (safetensors' own file is 0600)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def load_bundle(path: str | os.PathLike[str]) -> ModelBundle:
    """Open and validate a ``.cnnmodel`` folder or a lone ``.onnx`` file.

    Raises:
        BundleError: With one clear message for the first problem found.
    """
    source = Path(path)
    # A bundle's name can be empty for a moment (a save's two renames, where RENAME_EXCHANGE
    # is missing), or left empty by an interrupted save: a missing name, or one that looks
    # like a bundle, is read as a folder, which waits for the save or recovers the previous
    # copy, and reads again if a save swaps another bundle in meanwhile (never the files of
    # two saves).
    if not os.path.lexists(source) or source.suffix == BUNDLE_SUFFIX or source.is_dir():
        return read_unchanging_folder(source, _load_folder, BundleError)
    if not source.exists():
        raise BundleError(_why_missing(source))
    if source.suffix.lower() != ".onnx":
        raise BundleError(_not_a_model(source))
    proto = load_onnx_proto(source)
    spec = _spec_from_metadata(proto) or infer_spec(proto, source.stem)
    batch_size = check_graph(proto, spec, source)
    return ModelBundle(
        path=source, spec=spec, onnx_path=source, weights_path=None, batch_size=batch_size
    )


def _why_missing(source: Path) -> str:
    """The message for a path that does not lead to anything."""
    if not source.is_symlink():
        return f"model not found: {source}"
    try:
        source.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{source} is a loop of symbolic links, not a model"
    return f"{source} is a symbolic link to {os.readlink(source)}, which does not exist"


def _not_a_model(source: Path) -> str:
    return f"{source.name} is not a model: open a {BUNDLE_SUFFIX} folder or an .onnx file"


def _load_folder(folder: Path) -> ModelBundle:
    if not folder.exists():
        raise BundleError(_why_missing(folder))
    if not folder.is_dir():
        raise BundleError(_not_a_model(folder))
    onnx_path = folder / ONNX_FILE
    spec_path = folder / SPEC_FILE
    for required in (onnx_path, spec_path):
        if not os.path.lexists(required) or (required.is_symlink() and not required.exists()):
            raise BundleError(
                f"{folder.name} is not a complete model bundle: {required.name} is missing"
            )
    try:
        spec = ModelSpec.from_json(read_regular_file(spec_path, MAX_SPEC_BYTES))
    except SpecError as exc:
        raise BundleError(f"{folder.name}/{SPEC_FILE}: {exc}") from None
    except NotARegularFileError as exc:
        raise BundleError(f"{folder.name}/{SPEC_FILE} is {exc.strerror}") from None
    except OSError as exc:
        raise BundleError(f"{folder.name}/{SPEC_FILE} is unreadable: {exc.strerror}") from None
    proto = load_onnx_proto(onnx_path)
    batch_size = check_graph(proto, spec, onnx_path)
    weights_path = folder / WEIGHTS_FILE
    has_weights = os.path.lexists(weights_path)
    if has_weights:
        _check_safetensors(weights_path)
    unknown_path = folder / UNKNOWN_FILE
    unknown = read_detector(unknown_path, proto) if os.path.lexists(unknown_path) else None
    return ModelBundle(
        path=folder,
        spec=spec,
        onnx_path=onnx_path,
        weights_path=weights_path if has_weights else None,
        batch_size=batch_size,
        unknown=unknown,
    )


def _spec_from_metadata(proto: onnx.ModelProto) -> ModelSpec | None:
    for prop in proto.metadata_props:
        if prop.key == ONNX_METADATA_KEY:
            try:
                return ModelSpec.from_json(prop.value)
            except SpecError as exc:
                raise BundleError(f"the spec inside the ONNX metadata: {exc}") from None
    return None


def infer_spec(proto: onnx.ModelProto, name: str) -> ModelSpec:
    """Describe an ONNX classifier that carries no cnn-desktop spec, from its graph alone.

    Input must be ``[N, C, H, W]`` with C of 1 or 3 and static H, W; output ``[N, classes]``.
    Classes are named ``class 0 ...``; ImageNet mean/std are assumed and recorded as a guess.

    Raises:
        BundleError: The graph is not an image classifier cnn-desktop can drive.
    """
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(proto.graph.output) < 1:
        raise BundleError("this ONNX model is not an image classifier (needs one image input)")
    in_dims = static_dims(inputs[0])
    out_dims = static_dims(proto.graph.output[0])
    if len(in_dims) != 4 or in_dims[1] not in (1, 3) or not in_dims[2] or not in_dims[3]:
        raise BundleError(
            f"this ONNX model's input has shape {in_dims}; cnn-desktop needs [batch, 1 or 3, H, W]"
        )
    if len(out_dims) != 2 or not out_dims[1]:
        raise BundleError(
            f"this ONNX model's output has shape {out_dims}; expected [batch, classes]"
        )
    if out_dims[1] > MAX_CLASSES:  # before naming them all
        raise BundleError(
            f"this ONNX model predicts {out_dims[1]:,} classes; cnn-desktop opens at most "
            f"{MAX_CLASSES:,}"
        )
    channels = int(in_dims[1])
    last_op = proto.graph.node[-1].op_type
    data = {
        "format_version": 1,
        "name": name[:200] or "model",
        "architecture": "unknown",
        "class_names": [f"class {i}" for i in range(int(out_dims[1]))],
        "input_size": [int(in_dims[2]), int(in_dims[3])],
        "channels": channels,
        "mean": [0.485, 0.456, 0.406] if channels == 3 else [0.5],
        "std": [0.229, 0.224, 0.225] if channels == 3 else [0.5],
        "input_name": inputs[0].name,
        "output_name": proto.graph.output[0].name,
        "output_is_probability": last_op == "Softmax",
        "provenance": {"source": "onnx file without cnn-desktop spec", "preprocessing": "guessed"},
    }
    try:  # the limits of every spec (input size, names) hold for a guessed one too
        return ModelSpec.from_dict(data)
    except SpecError as exc:
        raise BundleError(f"this ONNX model cannot be used: {exc}") from None


def _check_safetensors(path: Path) -> None:
    try:
        with open_regular_file(path) as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            if not 2 <= header_len <= 100 * 1024**2:
                raise ValueError("bad header length")
            json.loads(handle.read(header_len))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise BundleError(
            f"{path.parent.name}/{path.name} is not a valid safetensors file: {reason}"
        ) from None
