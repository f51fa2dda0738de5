"""What a frozen (PyInstaller) app meets: no package metadata, and a cache that cannot be
written. Versions fall back to the modules' own, the weights are found in the package folder,
and caches move to a private temporary folder with a warning."""

from __future__ import annotations

import importlib.metadata
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from cnn_desktop import cli
from cnn_desktop.core.inference import sysinfo
from cnn_desktop.core.models import pretrained
from cnn_desktop.core.models.pretrained import PretrainedError, writable_folder
from cnn_desktop.core.training.config import TrainConfig
from tests.core import test_train
from tests.core.test_train import run

digits = test_train.digits  # the fixture: 4 classes of real handwritten digits


@pytest.fixture
def no_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """importlib.metadata finds no distribution at all, as in a PyInstaller build."""

    def missing(name: str, *args: object, **kwargs: object):
        raise importlib.metadata.PackageNotFoundError(name)

    for function in ("version", "files", "distribution", "metadata"):
        monkeypatch.setattr(importlib.metadata, function, missing)


@pytest.fixture
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tempfile.gettempdir() answers a fresh folder for this test."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_versions_fall_back_to_the_modules_without_metadata(no_package_metadata) -> None:
    import onnx

    packages = sysinfo.system_info(include_torch=False)["packages"]

    assert packages["numpy"] == np.__version__
    assert packages["onnx"] == onnx.__version__
    assert "not installed" in (packages["onnxruntime"], packages["onnxruntime-gpu"])
    assert all("metadata" not in version for version in packages.values())


def test_default_model_works_without_metadata(no_package_metadata) -> None:
    assert pretrained.source_version() == "unknown"
    assert pretrained.weights_file().suffix == ".pth"
    assert pretrained.weights_file().is_file()
    assert pretrained.default_spec().provenance["source_version"] == "unknown"
    assert "-unknown-" in pretrained.cached_bundle_path().name
    model = pretrained.load_pretrained_model()
    assert model.classifier.out_features == 1000


def test_info_prints_without_metadata(no_package_metadata, capsys) -> None:
    assert cli.main(["info", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["packages"]["numpy"] == np.__version__


def test_unwritable_cache_folder_is_replaced_by_a_private_one(
    tmp_path: Path, private_temp: Path
) -> None:
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("x")
    messages: list[str] = []

    folder = writable_folder(blocked / "models", lambda _f, message: messages.append(message))

    assert folder == private_temp / f"cnn-desktop-{os.getuid()}" / "models"
    assert folder.is_dir()
    assert folder.parent.stat().st_mode & 0o777 == 0o700
    assert len(messages) == 1 and messages[0].startswith("Warning: the cache folder")


def test_a_shared_stand_in_folder_is_not_trusted(tmp_path: Path, private_temp: Path) -> None:
    taken = private_temp / f"cnn-desktop-{os.getuid()}"
    taken.mkdir()
    taken.chmod(0o777)  # anyone could have put a model there

    blocked = tmp_path / "file"
    blocked.write_text("x")
    folder = writable_folder(blocked / "models")
    assert folder.parent != taken and folder.parent.parent == private_temp


def test_no_writable_folder_anywhere_is_one_pretrained_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("x")
    monkeypatch.setattr(pretrained, "_private_temp_root", lambda: blocked)
    with pytest.raises(PretrainedError, match=r"cannot write the cache folder .* nor "):
        writable_folder(blocked / "models")


def test_head_training_with_an_unwritable_cache_uses_the_stand_in(
    digits: Path, tmp_path: Path, private_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnn_desktop.core.training import head as train_head

    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("x")
    monkeypatch.setattr(train_head, "cache_dir", lambda: blocked)

    events, last = run(digits, tmp_path / "head", TrainConfig(mode="head", epochs=2))

    assert last.kind == "done"
    assert any("cannot be written" in event.message for event in events if event.kind == "notice")
    assert any((private_temp / f"cnn-desktop-{os.getuid()}" / "embeddings").rglob("*.npy"))
