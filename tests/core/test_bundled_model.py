"""A packaged app uses the default model it carries, already exported, and writes nothing."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from cnn_desktop.core.models import pretrained
from cnn_desktop.core.models.bundled_model import PACKAGED_BUNDLE, packaged_default_bundle_path


@pytest.fixture
def frozen_app(monkeypatch, tmp_path: Path, default_bundle) -> Path:
    """Pretend to be a packaged app whose data folder carries the default bundle, with an
    empty per-user cache; exporting the model would fail the test."""
    data_folder = tmp_path / "install dir" / "_internal"
    packaged = data_folder / PACKAGED_BUNDLE
    shutil.copytree(default_bundle.path, packaged)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(data_folder), raising=False)
    monkeypatch.setenv("CNN_DESKTOP_CACHE_DIR", str(tmp_path / "empty cache"))

    def no_export(path):
        raise AssertionError(f"the packaged app exported the model to {path}")

    monkeypatch.setattr(pretrained, "build_default_bundle", no_export)
    return packaged


def test_not_packaged_means_no_packaged_bundle(monkeypatch):
    monkeypatch.delattr(sys, "frozen", raising=False)
    assert packaged_default_bundle_path() is None


def test_packaged_app_uses_its_bundle_without_exporting(frozen_app: Path, tmp_path: Path):
    assert packaged_default_bundle_path() == frozen_app

    bundle = pretrained.default_model_bundle()

    assert bundle.path == frozen_app
    assert bundle.spec.num_classes == 1000 and bundle.weights_path is not None
    assert not (tmp_path / "empty cache").exists(), "nothing is written to the cache"


def test_packaged_app_without_its_bundle_builds_one_as_before(
    frozen_app: Path, monkeypatch, default_bundle
):
    shutil.rmtree(frozen_app.parent)
    built = []
    monkeypatch.setattr(
        pretrained, "build_default_bundle", lambda path: built.append(path) or default_bundle
    )

    assert packaged_default_bundle_path() is None
    assert pretrained.default_model_bundle() is default_bundle
    assert built == [pretrained.cached_bundle_path()]
