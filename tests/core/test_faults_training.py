"""Faults during training, injected for real: the model running out of memory on large batches
(the batch is halved and the run goes on, or a clear error at one image), and the image folder
deleted mid-run (a clear error naming it, the best checkpoint kept, the model at the output
untouched), in scratch and head mode."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnn_desktop.core.models.bundle import load_bundle
from cnn_desktop.core.training import TrainConfig, TrainEvent, train
from cnn_desktop.core.training import network as network_training
from cnn_desktop.core.training.config import TrainRunError
from cnn_desktop.core.training.loop import load_checkpoint
from cnn_desktop.core.training.placement import checkpoint_path
from tests.datasets import write_digits_dataset
from tests.fault_injection import OutOfMemoryAbove, write_unique_digits

LENET = {"mode": "scratch", "arch": "lenet5", "device": "cpu", "seed": 3}


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("digits") / "digits"
    write_digits_dataset(folder, per_class=24, classes=range(3))
    return folder


@pytest.fixture
def data_copy(digits: Path, tmp_path: Path) -> Path:
    """A copy of the digits this test may delete."""
    return Path(shutil.copytree(digits, tmp_path / "data"))


def inject_out_of_memory(monkeypatch, largest: int, cuda: bool = True) -> list[OutOfMemoryAbove]:
    """Every model a scratch run builds runs out of memory above ``largest`` images."""
    faults: list[OutOfMemoryAbove] = []
    build = network_training._build

    def build_with_fault(*args):
        model, spec = build(*args)
        faults.append(OutOfMemoryAbove(model, largest, cuda))
        return model, spec

    monkeypatch.setattr(network_training, "_build", build_with_fault)
    return faults


def run_disarming_at_export(events: Iterator[TrainEvent], faults) -> list[TrainEvent]:
    """Every event; the fault ends where the run exports (the model is then on the CPU)."""
    seen = []
    for event in events:
        if event.kind == "export":
            for fault in faults:
                fault.armed = False
        seen.append(event)
    return seen


@pytest.mark.parametrize("cuda", [True, False], ids=["cuda-oom", "cpu-allocator"])
def test_out_of_memory_halves_the_batch_and_training_goes_on(
    digits: Path, tmp_path: Path, monkeypatch, cuda: bool
) -> None:
    faults = inject_out_of_memory(monkeypatch, largest=4, cuda=cuda)
    config = TrainConfig(**LENET, epochs=2, batch_size=16)

    events = run_disarming_at_export(train(digits, tmp_path / "m", config), faults)

    notices = [e.message for e in events if e.kind == "notice"]
    assert notices[0].startswith("out of memory at batch size 16; continuing with 8")
    assert notices[1].startswith("out of memory at batch size 8; continuing with 4")
    assert len(notices) == 2, notices  # the smaller size is kept, validation included
    assert events[-1].kind == "done" and events[-1].result.export_verified
    assert faults[0].ran and max(faults[0].ran) <= 4
    assert events[-1].result.metrics["training"]["images_per_forward_pass"] == 4
    assert load_bundle(tmp_path / "m.cnnmodel").spec.num_classes == 3


def test_halved_batches_still_learn_from_the_whole_batch(
    digits: Path, tmp_path: Path, monkeypatch
) -> None:
    """Gradients of the parts add up to the whole batch's: LeNet-5 (no batch norm) trains to
    the same losses as without the fault."""
    config = TrainConfig(**LENET, epochs=2, batch_size=16)
    plain = [e for e in train(digits, tmp_path / "plain", config) if e.kind == "epoch"]
    faults = inject_out_of_memory(monkeypatch, largest=4)
    events = run_disarming_at_export(train(digits, tmp_path / "split", config), faults)
    split = [e for e in events if e.kind == "epoch"]

    assert len(split) == len(plain) == 2
    for a, b in zip(plain, split, strict=True):
        assert b.loss == pytest.approx(a.loss, rel=1e-4)
        assert b.val_loss == pytest.approx(a.val_loss, rel=1e-4)


def test_out_of_memory_at_one_image_is_a_clear_error(
    digits: Path, tmp_path: Path, monkeypatch
) -> None:
    faults = inject_out_of_memory(monkeypatch, largest=0)
    with pytest.raises(TrainRunError, match=r"^out of memory on cpu even at batch size 1; "):
        list(train(digits, tmp_path / "m", TrainConfig(**LENET, batch_size=8)))

    assert faults[0].ran == []
    assert not (tmp_path / "m.cnnmodel").exists()


def previous_model(folder: Path, out: Path) -> dict[str, bytes]:
    """A model already at ``out`` (trained on ``folder``); returns its files' bytes."""
    *_, last = train(folder, out, TrainConfig(**LENET, epochs=1))
    assert last.kind == "done"
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def test_folder_deleted_after_an_epoch_keeps_the_checkpoint_and_the_old_model(
    data_copy: Path, digits: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.cnnmodel"
    before = previous_model(digits, out)
    events = []
    with pytest.raises(TrainRunError) as raised:
        for event in train(data_copy, out, TrainConfig(**LENET, epochs=5, batch_size=8)):
            events.append(event)
            if event.kind == "epoch" and event.epoch == 1:
                shutil.rmtree(data_copy)

    message = str(raised.value)
    assert message.startswith(f"the image folder {data_copy} was deleted or moved during training")
    resume = checkpoint_path(out)
    assert f"kept in {resume}" in message and "--resume" in message
    saved = load_checkpoint(resume)
    assert saved["epoch"] == 1 and saved["best"] is not None and saved["history"]
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, resume.name])


def test_files_vanishing_mid_epoch_name_the_folder(data_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainRunError, match="images vanished from the image folder"):
        for event in train(data_copy, tmp_path / "m", TrainConfig(**LENET, epochs=3)):
            if event.kind == "epoch":
                for image in sorted((data_copy / "1").iterdir())[::2]:
                    image.unlink()
    assert not (tmp_path / "m.cnnmodel").exists()


def test_head_mode_folder_deleted_while_embedding_is_a_clear_error(
    tmp_path: Path, monkeypatch
) -> None:
    from cnn_desktop.core.training import embeddings

    data = write_unique_digits(tmp_path / "data", seed=int(tmp_path.stat().st_ino))
    run_batch = embeddings.EmbeddingModel.__call__

    def embed_then_delete(self, batch):
        shutil.rmtree(data, ignore_errors=True)  # gone after the first batch was decoded
        return run_batch(self, batch)

    monkeypatch.setattr(embeddings.EmbeddingModel, "__call__", embed_then_delete)
    with pytest.raises(TrainRunError) as raised:
        list(train(data, tmp_path / "head", TrainConfig(mode="head", epochs=2)))

    assert str(raised.value).startswith(f"the image folder {data} was deleted or moved")
    assert "embeddings computed so far stay cached" in str(raised.value)
    assert not (tmp_path / "head.cnnmodel").exists()
