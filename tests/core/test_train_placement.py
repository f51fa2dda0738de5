"""Where a run's model goes when its ONNX export check fails, and the free names the window
proposes: an existing model is never replaced by a model that did not pass its check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnn_desktop.core.models.bundle import load_bundle
from cnn_desktop.core.training import output as train_output
from cnn_desktop.core.training.config import TrainConfig
from cnn_desktop.core.training.placement import check_output, free_bundle_path
from cnn_desktop.core.training.run import train
from tests.cli.test_train_output import tree_digest
from tests.datasets import write_digits_dataset

LENET = TrainConfig(mode="scratch", arch="lenet5", epochs=1)


@pytest.fixture
def break_export_check(monkeypatch: pytest.MonkeyPatch):
    """Call it to make the export check report a mismatch, as a broken exporter would."""

    def mismatch(*_args, **_kwargs) -> dict:
        return {"images": 4, "top1_agreement": 0.5, "max_abs_difference": 0.3, "passed": False}

    return lambda: monkeypatch.setattr(train_output, "export_check", mismatch)


def last_result(data: Path, out: Path):
    events = list(train(data, out, LENET))
    assert events[-1].kind == "done"
    return events[-1]


def test_a_failed_export_check_keeps_the_existing_model(tmp_path: Path, break_export_check):
    older, newer = tmp_path / "older", tmp_path / "newer"
    write_digits_dataset(older, per_class=6, classes=(3, 4))
    write_digits_dataset(newer, per_class=6, classes=range(3))
    existing = last_result(older, tmp_path / "m").result.bundle.path
    before = tree_digest(existing)
    break_export_check()
    event = last_result(newer, tmp_path / "m")
    result = event.result
    assert not result.export_verified and not result.replaced
    assert result.kept_because == "its ONNX export check failed"
    assert re.fullmatch(r"m\.unverified-\d{8}-\d{6}\.cnnmodel", result.bundle.path.name)
    assert f"Kept the previous model at {existing}; the new one is at {result.bundle.path}" in (
        event.message
    )
    assert tree_digest(existing) == before
    assert load_bundle(existing).spec.class_names == ("3", "4")
    assert load_bundle(result.bundle.path).spec.class_names == ("0", "1", "2")
    assert result.bundle.read_json("metrics.json")["export_check"]["passed"] is False
    assert sorted(p.name for p in tmp_path.iterdir() if "checking" in p.name) == []


def test_with_nothing_to_protect_the_model_takes_the_name_asked_for(
    tmp_path: Path, break_export_check
) -> None:
    break_export_check()
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=6, classes=range(2))
    result = last_result(data, tmp_path / "m").result
    assert result.bundle.path == tmp_path / "m.cnnmodel"
    assert not result.replaced and not result.kept_because
    assert result.bundle.read_json("metrics.json")["export_check"]["passed"] is False


def test_free_names_and_output_checks(tmp_path: Path) -> None:
    assert free_bundle_path(tmp_path / "digits") == tmp_path / "digits.cnnmodel"
    (tmp_path / "digits.cnnmodel").mkdir()
    (tmp_path / "digits-2.cnnmodel").mkdir()
    assert free_bundle_path(tmp_path / "digits.cnnmodel") == tmp_path / "digits-3.cnnmodel"
    assert check_output(tmp_path / "new") == tmp_path / "new.cnnmodel"
    assert not [p for p in tmp_path.iterdir() if "write-test" in p.name]  # the probe is gone
