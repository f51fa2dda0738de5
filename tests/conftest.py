"""Shared fixtures: headless Qt, an isolated model cache, real photos written as files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# One cache for the whole test run (the default model's bundle is built once, ~5 s), kept
# apart from the user's real cache.
_CACHE = Path(__file__).resolve().parent.parent / ".pytest-cache-models"
os.environ.setdefault("CNN_DESKTOP_CACHE_DIR", str(_CACHE))
# Every training run is recorded: the test run's records go to a store of its own, never to
# the user's (tests of the store itself set their own in tmp_path).
os.environ.setdefault("CNN_DESKTOP_RUNS_DIR", tempfile.mkdtemp(prefix="cnn-desktop-test-runs-"))


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real photos from scikit-image, written as PNG and JPEG files."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    written = {}
    for name in ("chelsea", "coffee", "rocket", "astronaut"):
        array = getattr(data, name)()
        path = folder / f"{name}.png"
        Image.fromarray(array).save(path)
        written[name] = path
    Image.fromarray(data.coffee()).save(folder / "coffee_photo.jpg", quality=92)
    written["coffee_jpg"] = folder / "coffee_photo.jpg"
    return written


@pytest.fixture(scope="session")
def default_bundle():
    """The built-in model's bundle (built into the test cache on first use)."""
    from cnn_desktop.core.models.pretrained import default_model_bundle

    return default_model_bundle()


@pytest.fixture(scope="session")
def onnx_classifier(default_bundle):
    """The built-in model on ONNX Runtime (CPU)."""
    from cnn_desktop.core.inference.backends import open_classifier

    return open_classifier(default_bundle, "onnx", "cpu")
