"""Hostile model files, beyond tests/core/test_spec_bundle.py: external data reached through a
symbolic link, an absolute path or ``..``; specs with a million class names, wrong types or
absurd numbers; graphs declaring terabytes of weights; symbolic-link loops, FIFOs and devices.

Each is refused with one clear line by the loader and by ``cnn-desktop classify --model``, with
no side effect: no ONNX Runtime session is created, and the FIFOs the cases plant (outside the
bundle as the target of its external data, or in place of its files) are never opened — a
reader opening one would block, which the tests notice (the window's open path: see
tests/gui/test_hostile_model_open.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper
from PIL import Image

from cnn_desktop.core.inference.backends import open_classifier
from cnn_desktop.core.models.bundle import ONNX_FILE, SPEC_FILE, WEIGHTS_FILE, BundleError
from cnn_desktop.core.models.bundle import load_bundle as load_bundle_
from tests.core.test_spec_bundle import CLASSIFIER_SPEC, _classifier_onnx, _external_tensor
from tests.processes import REPO_ROOT

SPEC = dataclasses.replace(CLASSIFIER_SPEC, name="hostile")
BLOCKED_S = 60  # only a failing test waits this long: a loader stuck on a FIFO or /dev/zero


@dataclass(frozen=True)
class Hostile:
    """A hostile model: how to build it under a folder, and what its refusal says."""

    id: str
    build: Callable[[Path], Path]
    fragment: str


# --------------------------------------------------------------------------- builders


def _bundle(folder: Path, proto: onnx.ModelProto | None = None, spec: object = None) -> Path:
    """A bundle folder ``folder/model.cnnmodel`` of a valid 8×8 two-class graph and spec, or
    of the ``proto`` and ``spec`` (a dict, or the text of model.json) given."""
    bundle = folder / "model.cnnmodel"
    bundle.mkdir(parents=True)
    (bundle / ONNX_FILE).write_bytes((proto or _classifier_onnx()).SerializeToString())
    text = spec if isinstance(spec, str) else json.dumps(spec or SPEC.to_dict())
    (bundle / SPEC_FILE).write_text(text, encoding="utf-8")
    return bundle


def _marker_fifo(folder: Path) -> Path:
    """A FIFO outside every bundle: opening it to read it would block."""
    fifo = folder / "outside" / "secret.weights"
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    return fifo


def _external_through_link(folder: Path) -> Path:
    fifo = _marker_fifo(folder)
    bundle = _bundle(folder, _classifier_onnx(_external_tensor("weights.bin")))
    (bundle / "weights.bin").symlink_to(fifo)
    return bundle


def _external_absolute(folder: Path) -> Path:
    return _bundle(folder, _classifier_onnx(_external_tensor(str(_marker_fifo(folder)))))


def _external_traversal(folder: Path) -> Path:
    _marker_fifo(folder)
    return _bundle(folder, _classifier_onnx(_external_tensor("../outside/secret.weights")))


def _spec_with(**changes: object) -> Callable[[Path], Path]:
    return lambda folder: _bundle(folder, spec={**SPEC.to_dict(), **changes})


def _deeply_nested_spec(folder: Path) -> Path:
    text = json.dumps(SPEC.to_dict())[:-1] + ', "provenance": ' + "[" * 100_000 + "]" * 100_000
    return _bundle(folder, spec=text + "}")


def _huge_raw_initializer(folder: Path) -> Path:
    weights = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[10**6, 10**6])
    weights.raw_data = np.zeros(6, np.float32).tobytes()
    return _bundle(folder, _classifier_onnx(weights))


def _external_claiming_huge_length(folder: Path) -> Path:
    tensor = _external_tensor("weights.bin")
    tensor.external_data[2].value = str(10**13)  # "length"
    bundle = _bundle(folder, _classifier_onnx(tensor))
    (bundle / "weights.bin").write_bytes(np.zeros(6, np.float32).tobytes())
    return bundle


def _huge_sparse_initializer(folder: Path) -> Path:
    proto = _classifier_onnx()
    values = helper.make_tensor("values", TensorProto.FLOAT, [1], [1.0])
    indices = helper.make_tensor("indices", TensorProto.INT64, [1], [0])
    sparse = helper.make_sparse_tensor(values, indices, [10**6, 10**6])
    sparse.values.name = "unused_sparse"
    proto.graph.sparse_initializer.append(sparse)
    return _bundle(folder, proto)


def _huge_constant(folder: Path) -> Path:
    proto = _classifier_onnx()
    value = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[10**6, 10**6])
    value.raw_data = b"\0" * 4
    proto.graph.node.insert(0, helper.make_node("Constant", [], ["unused"], value=value))
    return _bundle(folder, proto)


def _lone_onnx(input_side: int, classes: int) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        nodes = [
            helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["logits"]),
        ]
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, input_side, 8])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        path = folder / "foreign.onnx"
        path.write_bytes(model.SerializeToString())
        return path

    return build


def _link_loop(folder: Path) -> Path:
    first, second = folder / "a.cnnmodel", folder / "b.cnnmodel"
    first.symlink_to(second)
    second.symlink_to(first)
    return first


def _linked_to_itself(folder: Path) -> Path:
    itself = folder / "self.cnnmodel"
    itself.symlink_to(itself.name)
    return itself


def _bundle_file_replaced(name: str, by: str) -> Callable[[Path], Path]:
    """A valid bundle whose file ``name`` is a FIFO or a link to /dev/zero."""

    def build(folder: Path) -> Path:
        bundle = _bundle(folder)
        target = bundle / name
        target.unlink(missing_ok=True)
        os.mkfifo(target) if by == "fifo" else target.symlink_to("/dev/zero")
        return bundle

    return build


def _lone_onnx_replaced(by: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / "device.onnx"
        os.mkfifo(path) if by == "fifo" else path.symlink_to("/dev/zero")
        return path

    return build


HOSTILE = [
    Hostile("external-data-through-a-link", _external_through_link, "outside the model folder"),
    Hostile("external-data-absolute", _external_absolute, "outside the model folder"),
    Hostile("external-data-traversal", _external_traversal, "outside the model folder"),
    Hostile(
        "a-million-class-names",
        _spec_with(class_names=[f"class {i}" for i in range(10**6)]),
        "'class_names': 1,000,000 items, more than 100,000",
    ),
    Hostile("class-names-numbers", _spec_with(class_names=[1, 2]), "'class_names/"),
    Hostile("class-names-nested", _spec_with(class_names=[["x"], ["y"]]), "'class_names/"),
    Hostile("class-names-none", _spec_with(class_names=None), "'class_names'"),
    Hostile("input-size-a-string", _spec_with(input_size="8x8"), "'input_size'"),
    Hostile("input-size-floats", _spec_with(input_size=[8.5, 8]), "'input_size/"),
    Hostile("input-size-absurd", _spec_with(input_size=[10**6, 10**6]), "'input_size/"),
    Hostile("mean-a-string", _spec_with(mean="0.5"), "'mean'"),
    Hostile("mean-absurd", _spec_with(mean=[1e308, 0.5, 0.5]), "'mean/0'"),
    Hostile("std-negative", _spec_with(std=[-0.5, 0.5, 0.5]), "'std/0'"),
    Hostile("std-denormal", _spec_with(std=[1e-320, 0.5, 0.5]), "'std/0'"),
    Hostile("std-nan", _spec_with(std=[float("nan"), 0.5, 0.5]), "'std'"),
    Hostile("crop-fraction-tiny", _spec_with(crop_fraction=1e-300), "'crop_fraction'"),
    Hostile("name-of-a-million-characters", _spec_with(name="n" * 10**6), "'name'"),
    Hostile("spec-nested-100000-deep", _deeply_nested_spec, "nested"),
    Hostile("huge-initializer", _huge_raw_initializer, "declares 1,000,000,000,000 values"),
    Hostile("external-huge-length", _external_claiming_huge_length, "claims 10,000,000,000,000"),
    Hostile("huge-sparse-initializer", _huge_sparse_initializer, "GB of weights, more than"),
    Hostile("huge-constant", _huge_constant, "declares 1,000,000,000,000 values"),
    Hostile("foreign-onnx-absurd-input", _lone_onnx(10**6, 2), "'input_size/"),
    Hostile("foreign-onnx-1e8-classes", _lone_onnx(8, 10**8), "predicts 100,000,000 classes"),
    Hostile("symlink-loop", _link_loop, "loop of symbolic links"),
    Hostile("folder-linked-to-itself", _linked_to_itself, "loop of symbolic links"),
    Hostile("onnx-a-fifo", _bundle_file_replaced(ONNX_FILE, "fifo"), "not a regular file (a FIFO)"),
    Hostile("onnx-dev-zero", _bundle_file_replaced(ONNX_FILE, "zero"), "(a character device)"),
    Hostile("spec-a-fifo", _bundle_file_replaced(SPEC_FILE, "fifo"), "not a regular file (a FIFO)"),
    Hostile("weights-a-fifo", _bundle_file_replaced(WEIGHTS_FILE, "fifo"), "(a FIFO)"),
    Hostile("weights-dev-zero", _bundle_file_replaced(WEIGHTS_FILE, "zero"), "character device"),
    Hostile("lone-onnx-a-fifo", _lone_onnx_replaced("fifo"), "not a regular file (a FIFO)"),
    Hostile("lone-onnx-dev-zero", _lone_onnx_replaced("zero"), "(a character device)"),
]
HOSTILE_IDS = [case.id for case in HOSTILE]
BY_ID = {case.id: case for case in HOSTILE}


# --------------------------------------------------------------------------- the guard


def release_fifo_readers(folder: Path) -> int:
    """Open for writing (without blocking) every FIFO under ``folder`` that a reader is
    waiting on, so the reader goes on; how many had one."""
    released = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            if not path.is_symlink() and path.is_fifo():
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                    released += 1
                except OSError:  # ENXIO: no reader, as it should be
                    pass
    return released


def refusal(action: Callable[[], object], folder: Path) -> str:
    """Run ``action`` (which must raise BundleError) in a thread, and return the message.

    Fails when it does not raise, or when it blocks (on a FIFO under ``folder``, or reading
    a device for ever).
    """
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(action())
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=BLOCKED_S)
    if worker.is_alive():
        released = release_fifo_readers(folder)
        pytest.fail(f"the loader blocked (FIFOs it was waiting on: {released})")
    (result,) = outcome
    assert isinstance(result, BundleError), f"not refused: {result!r}"
    return str(result)


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Every ONNX Runtime session created during the test (none may be)."""
    created: list[tuple] = []

    def record(*args, **kwargs):
        created.append(args)
        raise AssertionError("an ONNX Runtime session was created for a hostile model")

    monkeypatch.setattr(onnxruntime, "InferenceSession", record)
    return created


def open_like_the_app(path: Path) -> None:
    """What the CLI and the window do with ``--model`` / File → Open model."""
    bundle = load_bundle_(path)
    open_classifier(bundle, "onnx", "cpu")


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("case", HOSTILE, ids=HOSTILE_IDS)
def test_a_hostile_model_is_refused_with_one_line_and_no_side_effect(
    tmp_path: Path, case: Hostile, sessions: list[tuple]
) -> None:
    path = case.build(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    message = refusal(lambda: open_like_the_app(path), tmp_path)

    assert case.fragment in message
    assert "\n" not in message and len(message) < 400, message
    assert sessions == []
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert release_fifo_readers(tmp_path) == 0  # nothing is still waiting on a FIFO


CLI_CHECK = r"""
import contextlib, io, json, sys
from pathlib import Path
import onnxruntime

marker = Path(sys.argv[1])
def record(*args, **kwargs):
    marker.write_text("an ONNX Runtime session was created")
    raise RuntimeError("no session may be created")
onnxruntime.InferenceSession = record

from cnn_desktop.cli.main import main
for model in sys.argv[3:]:
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        code = main(["classify", "--model", model, sys.argv[2]])
    print(json.dumps({"model": model, "code": code, "stderr": stderr.getvalue()}), flush=True)
"""


def test_the_cli_refuses_every_hostile_model_in_one_line(tmp_path: Path) -> None:
    """``cnn-desktop classify --model HOSTILE photo.png``, for every case in one process."""
    image = tmp_path / "photo.png"
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(image)
    models = {}
    for case in HOSTILE:
        (tmp_path / case.id).mkdir()
        models[str(case.build(tmp_path / case.id))] = case
    marker = tmp_path / "session-created"
    result = subprocess.run(
        [sys.executable, "-c", CLI_CHECK, str(marker), str(image), *models],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # a loader blocked on a FIFO or /dev/zero ends the run here
    )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["model"] for a in answers] == list(models)
    for answer in answers:
        case = models[answer["model"]]
        lines = answer["stderr"].splitlines()
        assert answer["code"] == 2, (case.id, answer)
        assert len(lines) == 1 and lines[0].startswith("cnn-desktop: error: "), (case.id, lines)
        assert case.fragment in lines[0], (case.id, lines[0])
    assert not marker.exists()
    assert release_fifo_readers(tmp_path) == 0


def test_the_real_cli_does_not_block_on_fifo_weights(tmp_path: Path) -> None:
    """The case that used to hang for ever (``weights.safetensors`` a FIFO), through
    ``python -m cnn_desktop`` itself."""
    image = tmp_path / "photo.png"
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(image)
    bundle = BY_ID["weights-a-fifo"].build(tmp_path)
    command = [sys.executable, "-m", "cnn_desktop", "classify", "--model", bundle, image]
    result = subprocess.run(
        list(map(str, command)), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "cnn-desktop: error: model.cnnmodel/weights.safetensors is not a valid safetensors "
        "file: not a regular file (a FIFO)"
    ]
