"""What the README promises about training runs and nothing else checked: ``--balance
sampler`` really draws the classes equally often, and early stopping keeps the best epoch
(the saved model is the best one, not the last)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnn_desktop.core.inference.backends import open_classifier
from cnn_desktop.core.training.config import TrainConfig
from cnn_desktop.core.training.evaluate import evaluate_items
from cnn_desktop.core.training.run import train
from tests.core.loss_recorder import record_losses, training_loss
from tests.datasets import write_digits_dataset


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits 0 and 1: 40 images of 0, 6 of 1 (32 and 5 of them train)."""
    folder = tmp_path_factory.mktemp("imbalanced")
    write_digits_dataset(folder, per_class=40, classes=range(2))
    for path in sorted((folder / "1").iterdir())[6:]:
        path.unlink()
    return folder


@pytest.mark.parametrize("balance", ["sampler", "none"])
def test_the_sampler_draws_both_classes_equally_often(
    imbalanced, tmp_path, monkeypatch, balance: str
) -> None:
    losses = record_losses(monkeypatch)
    config = TrainConfig(mode="scratch", arch="lenet5", epochs=8, patience=100, balance=balance)
    events = list(train(imbalanced, tmp_path / balance, config))
    assert events[-1].kind == "done"
    split = events[0].data["split"]
    assert np.bincount([label for _, label in split.train]).tolist() == [32, 5]
    loss = training_loss(losses)
    assert loss.class_weights() is None, "the sampler replaces class weights, never both"
    drawn = loss.label_counts(2)  # the labels the model was really trained on, all epochs
    epochs = len(events[-1].result.history)
    assert epochs == 8 and drawn.sum() == 37 * epochs
    if balance == "none":
        assert drawn.tolist() == [32 * epochs, 5 * epochs]  # each image once per epoch
    else:
        share = drawn[1] / drawn.sum()
        assert 0.4 <= share <= 0.6, f"the rare class is {share:.0%} of the draws, not about half"


def test_early_stopping_keeps_the_best_epoch_not_the_last(tmp_path) -> None:
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=20, classes=range(4))
    epochs = 30
    # A high learning rate and little patience: validation accuracy soon peaks and falls.
    # Which seed shows a fall after the peak depends on the random numbers, so look for one.
    for seed in range(8):
        config = TrainConfig(
            mode="scratch", arch="lenet5", epochs=epochs, patience=2, lr=1e-2, seed=seed
        )
        events = list(train(data, tmp_path / f"seed{seed}", config))
        history = events[-1].result.history
        best = max(record["val_accuracy"] for record in history)
        if history[-1]["val_accuracy"] < best:
            break
    else:
        pytest.fail("no run ended below its best epoch: nothing to tell best from last")

    assert events[-1].kind == "done"
    result = events[-1].result
    best_epoch = max(history, key=lambda record: record["val_accuracy"])["epoch"]
    # Stopped early: two epochs without improvement after the best one, long before 30.
    assert len(history) == best_epoch + 2 < epochs
    assert [e.epoch for e in events if e.kind == "epoch"] == list(range(1, len(history) + 1))
    assert result.metrics["training"]["epochs_run"] == len(history)
    assert result.metrics["training"]["best_val_accuracy"] == best
    # The saved model is the best epoch's: evaluated again through ONNX on the same
    # validation images, it scores the best accuracy, not the last epoch's.
    assert result.metrics["evaluation"]["accuracy"] == pytest.approx(best)
    split = events[0].data["split"]
    classes = events[0].data["report"].classes
    again = evaluate_items(open_classifier(result.bundle, "onnx", "cpu"), split.val, classes)
    assert again.accuracy == pytest.approx(best)
    assert again.accuracy > history[-1]["val_accuracy"]
