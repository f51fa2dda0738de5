"""Work that runs on worker threads leaves process-wide state alone: training neither seeds nor
consumes the global random generators, and temporary warning filters are only ever changed
under the one shared lock."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnn_desktop.core.imaging import loading as images
from cnn_desktop.core.imaging.warnings_lock import WARNINGS_LOCK
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.training.augment import augmentation_preview
from cnn_desktop.core.training.config import TrainConfig
from tests.core import test_train
from tests.core.test_train import run

digits = test_train.digits  # the fixture: 4 classes of real handwritten digits


def _global_random_state() -> tuple[bytes, str]:
    return torch.get_rng_state().numpy().tobytes(), repr(np.random.get_state())


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(mode="scratch", arch="lenet5", epochs=1, augment=("flip", "crop", "noise")),
        TrainConfig(mode="scratch", arch="mobilenet_v3_small", epochs=1, img_size=32),
        TrainConfig(mode="head", epochs=3),
    ],
    ids=["scratch-augmented", "scratch-dropout", "head"],
)
def test_training_leaves_the_global_random_state_as_it_was(
    digits: Path,
    tmp_path: Path,
    config: TrainConfig,
) -> None:
    torch.manual_seed(1234)
    np.random.seed(1234)
    before = _global_random_state()

    last = run(digits, tmp_path / "model", TrainConfig(**{**config.__dict__, "device": "cpu"}))[1]

    assert last.kind == "done"
    assert _global_random_state() == before


def test_same_seed_gives_the_same_run_whatever_the_global_random_state(
    digits: Path,
    tmp_path: Path,
) -> None:
    """Dropout (MobileNetV3) and augmentation draw from the run's own seeded streams."""
    config = TrainConfig(
        mode="scratch",
        arch="mobilenet_v3_small",
        epochs=1,
        img_size=32,
        augment=("flip", "crop", "color", "noise"),
        seed=5,
        device="cpu",
    )
    torch.manual_seed(1)
    first = run(digits, tmp_path / "a", config)[1].result.history
    torch.manual_seed(2)
    torch.rand(1000)
    second = run(digits, tmp_path / "b", config)[1].result.history
    assert first == second


def test_augmentation_preview_leaves_torch_random_state_alone() -> None:
    spec = ModelSpec(name="x", architecture="lenet5", class_names=("a", "b"), input_size=(32, 32))
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8))
    torch.manual_seed(9)
    before = _global_random_state()
    names = ["flip", "vflip", "rotate", "crop", "color", "blur", "noise"]

    first = augmentation_preview(photo, names, spec, count=4, seed=3)
    second = augmentation_preview(photo, names, spec, count=4, seed=3)

    assert _global_random_state() == before
    assert [np.asarray(a).tobytes() for a in first] == [np.asarray(b).tobytes() for b in second]
    assert len({np.asarray(a).tobytes() for a in first}) > 1  # the samples really differ


def _lock_is_held_by_another_thread() -> bool:
    answer: list[bool] = []

    def probe() -> None:
        acquired = WARNINGS_LOCK.acquire(blocking=False)
        if acquired:
            WARNINGS_LOCK.release()
        answer.append(not acquired)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return answer[0]


def test_onnx_export_changes_warning_filters_only_under_the_shared_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from torch import nn

    from cnn_desktop.core.models.export import export_onnx

    filters_before = list(warnings.filters)
    seen: list[tuple[bool, bool]] = []
    real_export = torch.onnx.export

    def export_and_look(*args, **kwargs):
        changed = warnings.filters != filters_before
        seen.append((changed, _lock_is_held_by_another_thread()))
        return real_export(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export_and_look)
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    spec = ModelSpec(name="x", architecture="unknown", class_names=("a", "b"), input_size=(8, 8))
    export_onnx(model, spec, [])

    assert seen == [(True, True)]  # filters changed, and the lock held while they were
    assert warnings.filters == filters_before


def test_image_loading_silences_pillow_under_the_same_lock() -> None:
    assert images._quietly(_lock_is_held_by_another_thread) is True
    assert _lock_is_held_by_another_thread() is False


def test_opening_a_model_on_torch_leaves_the_global_random_state_alone(default_bundle) -> None:
    from cnn_desktop.core.inference.backends import open_classifier

    torch.manual_seed(4)
    before = _global_random_state()
    open_classifier(default_bundle, "torch", "cpu")
    assert _global_random_state() == before


def test_onnx_export_leaves_the_model_in_eval_mode_and_draws_no_random_numbers() -> None:
    from torch import nn

    from cnn_desktop.core.models.export import export_onnx

    model = nn.Sequential(
        nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(2, 2)
    ).train()
    spec = ModelSpec(name="x", architecture="unknown", class_names=("a", "b"), input_size=(8, 8))
    export_onnx(model, spec, [])
    assert not any(module.training for module in model.modules())
    before = _global_random_state()
    with torch.no_grad():
        model(torch.zeros(1, 3, 8, 8))  # dropout would draw from the global generator
    assert _global_random_state() == before
