"""The run recorder and store: a run's status follows how it ended (finished, cancelled,
failed, or abandoned by its caller), and its history is kept whatever happens."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnn_desktop.core.runs import RunStore, recorded_train
from cnn_desktop.core.runs import recorder as recorder_module
from cnn_desktop.core.tasks import CancelToken
from cnn_desktop.core.training import TrainConfig, TrainEvent, make_split, scan_folder
from tests.datasets import write_digits_dataset


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("digits")
    write_digits_dataset(data, per_class=15, classes=range(3))
    return data


def test_a_run_cancelled_after_an_epoch_is_recorded_as_cancelled(digits, tmp_path):
    store, cancel = RunStore(tmp_path / "runs"), CancelToken()
    for event in recorded_train(
        digits, tmp_path / "m", TrainConfig(epochs=50, patience=50), cancel=cancel, store=store
    ):
        if event.kind == "epoch" and event.epoch == 2:
            cancel.cancel()
    [record] = store.runs()
    assert record["status"] == "cancelled"
    assert [row["epoch"] for row in record["history"]][:2] == [1, 2]
    assert len(record["history"]) < 50 and Path(record["bundle"]).is_dir()


def test_a_run_abandoned_by_its_caller_is_recorded_as_cancelled(digits, tmp_path):
    store = RunStore(tmp_path / "runs")
    events = recorded_train(digits, tmp_path / "m", TrainConfig(epochs=30), store=store)
    for event in events:
        if event.kind == "epoch":
            break
    events.close()  # the window closed mid-run
    [record] = store.runs()
    assert record["status"] == "cancelled" and len(record["history"]) == 1
    assert record["error"] == "stopped after epoch 1; no model was saved"
    assert record["bundle"] is None


def test_a_run_that_fails_midway_is_recorded_as_failed_with_the_reason(
    digits, tmp_path, monkeypatch
):
    def failing_train(data_dir, out, config, cancel=None):
        report = scan_folder(data_dir)
        split = make_split(report, config.val_split, config.seed)
        yield TrainEvent("scan", message="", data={"report": report, "split": split})
        yield TrainEvent("epoch", epoch=1, epochs=5, loss=0.5, val_accuracy=0.25)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(recorder_module, "train", failing_train)
    store = RunStore(tmp_path / "runs")
    with pytest.raises(OSError):
        list(recorded_train(digits, tmp_path / "m", TrainConfig(epochs=5), store=store))
    [record] = store.runs()
    assert record["status"] == "failed"
    assert "No space left on device" in record["error"]
    assert record["history"] == [
        {"epoch": 1, "loss": 0.5, "accuracy": None, "val_loss": None, "val_accuracy": 0.25,
         "lr": None}
    ]  # fmt: skip
    assert record["data"]["images"] == 45


def test_a_run_that_cannot_start_leaves_no_record(tmp_path):
    store = RunStore(tmp_path / "runs")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError):
        list(recorded_train(tmp_path / "empty", tmp_path / "m", TrainConfig(), store=store))
    assert store.runs() == [] and store.problems == []
