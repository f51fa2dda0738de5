"""Real end-to-end training on real images: every mode, cancel, resume, imbalance, junk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cnn_desktop.core.inference.backends import open_classifier
from cnn_desktop.core.models.bundle import load_bundle
from cnn_desktop.core.tasks import Cancelled, CancelToken
from cnn_desktop.core.training.augment import AugmentationError
from cnn_desktop.core.training.config import TrainConfig, TrainError
from cnn_desktop.core.training.dataset import DatasetError
from cnn_desktop.core.training.evaluate import evaluate_folder
from cnn_desktop.core.training.placement import checkpoint_path
from cnn_desktop.core.training.run import train
from tests.core.loss_recorder import record_losses, training_loss
from tests.datasets import write_digits_dataset, write_junk, write_photo_dataset


def run(data: Path, out: Path, config: TrainConfig, cancel: CancelToken | None = None):
    """All events of a run, and the final one."""
    events = list(train(data, out, config, cancel=cancel))
    return events, events[-1]


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("digits")
    write_digits_dataset(folder, per_class=40, classes=range(4), size=28)
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    write_photo_dataset(folder, per_class=10, size=96)
    return folder


def test_scratch_lenet_on_digits_learns_and_exports_a_verified_model(digits, tmp_path) -> None:
    config = TrainConfig(mode="scratch", arch="lenet5", epochs=12, seed=1)
    events, last = run(digits, tmp_path / "lenet", config)
    assert last.kind == "done"
    kinds = {e.kind for e in events}
    assert {"scan", "step", "epoch", "export", "done"} <= kinds
    result = last.result
    bundle = load_bundle(result.bundle.path)
    assert bundle.spec.channels == 1  # grayscale digits give a grayscale model
    assert bundle.spec.class_names == ("0", "1", "2", "3")
    assert (bundle.path / "history.json").is_file() and (bundle.path / "metrics.json").is_file()
    metrics = json.loads((bundle.path / "metrics.json").read_text())
    check = metrics["export_check"]
    assert check["passed"] and check["top1_agreement"] == 1.0
    assert check["max_abs_difference"] <= 1e-4
    assert metrics["evaluation"]["accuracy"] > 0.6  # chance is 0.25
    # The saved model classifies like the evaluation says, through the normal path.
    evaluation = evaluate_folder(open_classifier(bundle, "onnx", "cpu"), digits)
    assert evaluation.accuracy > 0.6
    assert not checkpoint_path(result.bundle.path).exists()  # finished runs leave no checkpoint


def test_head_mode_on_photos_is_accurate_and_caches_the_embeddings(
    photos, tmp_path, monkeypatch
) -> None:
    from cnn_desktop.core.training import head as train_head

    monkeypatch.setattr(train_head, "cache_dir", lambda: tmp_path / "cache")  # a cold cache
    events, last = run(photos, tmp_path / "head", TrainConfig(mode="head", epochs=30))
    assert last.kind == "done"
    assert any(e.kind == "embed" and e.fraction > 0 for e in events)
    metrics = last.result.metrics
    assert metrics["export_check"]["passed"]
    assert metrics["evaluation"]["accuracy"] >= 0.8  # three very different photos
    # The embedding cache makes a second run skip every image.
    again, last_again = run(photos, tmp_path / "head2", TrainConfig(mode="head", epochs=30))
    assert not any(e.kind == "embed" and e.fraction > 0 for e in again)
    assert last_again.result.metrics["evaluation"]["accuracy"] == metrics["evaluation"]["accuracy"]


def test_full_mode_fine_tunes_every_layer(photos, tmp_path) -> None:
    small = tmp_path / "small"
    for name in ("cat", "coffee"):
        (small / name).mkdir(parents=True)
        for path in sorted((photos / name).iterdir())[:6]:
            shutil.copy(path, small / name / path.name)
    config = TrainConfig(mode="full", epochs=1, batch_size=4, augment=("flip",), device="cpu")
    events, last = run(small, tmp_path / "full", config)
    assert last.kind == "done"
    assert last.result.metrics["export_check"]["passed"]
    steps = [e for e in events if e.kind == "step"]
    assert steps and all(e.images_per_s > 0 for e in steps)
    assert last.result.bundle.spec.architecture == "tf_efficientnet_lite0"

    # Every trainable tensor of the backbone moved away from the ImageNet weights (a frozen
    # layer would keep them exactly), and the new two-class head was trained.
    from safetensors.numpy import load_file

    from cnn_desktop.core.models.pretrained import load_pretrained_model

    pretrained = load_pretrained_model()
    before = {name: p.detach().numpy() for name, p in pretrained.named_parameters()}
    after = load_file(str(last.result.bundle.weights_path))
    head = {name for name, _ in pretrained.get_classifier().named_parameters(prefix="classifier")}
    backbone = sorted(set(before) - head)
    assert len(backbone) > 100 and head == {"classifier.weight", "classifier.bias"}
    unchanged = [name for name in backbone if np.array_equal(after[name], before[name])]
    assert unchanged == [], f"{len(unchanged)} of {len(backbone)} layers were not trained"
    assert after["classifier.weight"].shape == (2, before["classifier.weight"].shape[1])


def test_same_seed_gives_same_metrics_on_cpu(digits, tmp_path) -> None:
    config = TrainConfig(mode="scratch", arch="lenet5", epochs=2, seed=7, device="cpu")
    first = run(digits, tmp_path / "a", config)[1].result.history
    second = run(digits, tmp_path / "b", config)[1].result.history
    assert first == second


def test_cancel_keeps_the_best_model_and_resume_finishes(digits, tmp_path) -> None:
    out = tmp_path / "resumable"
    cancel = CancelToken()
    config = TrainConfig(mode="scratch", arch="lenet5", epochs=6, seed=3)
    events = []
    for event in train(digits, out, config, cancel=cancel):
        events.append(event)
        if event.kind == "epoch" and event.epoch == 2:
            cancel.cancel()
    assert events[-1].kind == "cancelled"
    saved = events[-1].result.bundle
    assert load_bundle(saved.path).spec.num_classes == 4
    assert checkpoint_path(saved.path).exists()
    assert max(e.epoch for e in events if e.kind == "epoch") == 2
    resumed = list(train(digits, out, TrainConfig(**{**config.__dict__, "resume": True})))
    epochs = [e.epoch for e in resumed if e.kind == "epoch"]
    assert epochs and epochs[0] == 3  # continued, not restarted
    assert resumed[-1].kind == "done"
    assert len(resumed[-1].result.history) == 6


def test_cancel_before_the_first_epoch_saves_nothing(digits, tmp_path) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        run(digits, tmp_path / "never", TrainConfig(mode="scratch", arch="lenet5"), cancel)
    assert not (tmp_path / "never.cnnmodel").exists()


def test_imbalanced_data_uses_class_weights(tmp_path, monkeypatch) -> None:
    data = tmp_path / "imbalanced"
    write_digits_dataset(data, per_class=40, classes=range(2))
    for path in sorted((data / "1").iterdir())[6:]:
        path.unlink()
    losses = record_losses(monkeypatch)
    events, last = run(data, tmp_path / "imb", TrainConfig(mode="scratch", arch="lenet5", epochs=3))
    scan = events[0]
    assert "imbalanced" in scan.message
    assert last.kind == "done"
    # 40 and 6 images: 32 and 5 train. The loss weighs each class by its inverse frequency
    # (averaging 1), so the 5 rare images count as much as the 32 common ones.
    split = scan.data["split"]
    counts = np.bincount([label for _, label in split.train], minlength=2)
    assert counts.tolist() == [32, 5]
    weights = training_loss(losses).class_weights()
    assert weights is not None, "the training loss has no class weights"
    np.testing.assert_allclose(weights, [2 * 5 / 37, 2 * 32 / 37], rtol=1e-6)
    np.testing.assert_allclose(weights * counts, [weights[0] * 32] * 2, rtol=1e-6)

    # Without the imbalance (or with balance "none") nothing is weighted.
    losses.clear()
    config = TrainConfig(mode="scratch", arch="lenet5", epochs=1, balance="none")
    assert run(data, tmp_path / "plain", config)[1].kind == "done"
    assert training_loss(losses).class_weights() is None


def test_junk_files_are_skipped_and_training_goes_on(tmp_path) -> None:
    data = tmp_path / "junk"
    write_digits_dataset(data, per_class=12, classes=range(3))
    junk = write_junk(data, "0")
    events, last = run(data, tmp_path / "j", TrainConfig(mode="scratch", arch="lenet5", epochs=2))
    report = events[0].data["report"]
    assert dict(report.skipped) == junk  # every junk file, each with its reason
    assert len(report.skipped) == len(junk)  # and each once (a hidden folder, not its files)
    assert report.counts() == {"0": 12, "1": 12, "2": 12}
    assert last.kind == "done"
    training = last.result.metrics["training"]
    assert training["train_images"] + training["val_images"] == 36  # every real image


def test_single_class_and_empty_folders_are_clear_errors(tmp_path) -> None:
    single = tmp_path / "single"
    write_digits_dataset(single, per_class=5, classes=range(1))
    with pytest.raises(DatasetError, match="one class"):
        run(single, tmp_path / "x", TrainConfig(mode="scratch", arch="lenet5"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"^no class folders with images in .*empty$"):
        run(empty, tmp_path / "y", TrainConfig(mode="scratch", arch="lenet5"))


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        (TrainConfig(mode="sideways"), TrainError, r"^unknown mode 'sideways' \(choose from head,"),
        (
            TrainConfig(mode="scratch", arch="transformer"),
            TrainError,
            r"^unknown architecture 'transformer' for scratch training \(choose from lenet5,",
        ),
        (TrainConfig(mode="scratch", epochs=0), TrainError, r"^epochs must be at least 1$"),
        (TrainConfig(val_split=1.5), TrainError, r"^the validation split must be between 0 and 1$"),
        (
            TrainConfig(augment=("wobble",)),
            AugmentationError,
            r"^unknown augmentation wobble \(choose from flip,",
        ),
    ],
    ids=["mode", "arch", "epochs", "val_split", "augment"],
)
def test_bad_options_are_refused_before_training(digits, tmp_path, config, error, message) -> None:
    events = train(digits, tmp_path / "bad", config)
    with pytest.raises(error, match=message) as refused:
        next(events)  # refused before the scan: no event at all
    assert refused.type is error
    assert list(tmp_path.iterdir()) == []
