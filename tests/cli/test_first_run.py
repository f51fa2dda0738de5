"""``cnn-desktop classify`` on a machine that has never run it: the model cache is empty, so
the built-in model is built first (and says so), then reused. The other CLI tests share a
pre-built cache and never see this."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from PIL import Image

from tests.processes import run_python

CATS = {"tabby", "tiger cat", "Egyptian cat"}
FIRST_RUN_NOTE = "Preparing the default model (first run only)"


def test_first_classify_on_an_empty_cache_builds_the_model_once(tmp_path: Path) -> None:
    from skimage import data

    photo = tmp_path / "chelsea.jpg"
    Image.fromarray(data.chelsea()).save(photo, quality=92)
    cache = tmp_path / "never-used-cache"

    def classify() -> subprocess.CompletedProcess[str]:
        return run_python(
            "-m", "cnn_desktop", "classify", photo, "--format", "json",
            env={"CNN_DESKTOP_CACHE_DIR": str(cache)},
        )  # fmt: skip

    first = classify()
    assert first.returncode == 0, first.stderr[-3000:]
    assert FIRST_RUN_NOTE in first.stderr
    assert "Traceback" not in first.stderr
    assert json.loads(first.stdout)["predictions"][0]["label"] in CATS
    assert [p.suffix for p in (cache / "models").iterdir() if p.is_dir()] == [".cnnmodel"]

    again = classify()
    assert again.returncode == 0, again.stderr[-3000:]
    assert FIRST_RUN_NOTE not in again.stderr, "the built model is reused"
    assert again.stdout == first.stdout
