"""``cnn-desktop gui --smoke-test``, the check ``make package-test`` runs on a packaged app,
run here on the source tree as a user runs it (a subprocess), and the window's icon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QSize

from cnn_desktop.gui.app import app_icon

REPO_ROOT = Path(__file__).resolve().parents[2]
CATS = ("tabby", "tiger cat", "Egyptian cat")


def smoke_test(*args: str | os.PathLike, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("QT_QPA_PLATFORM", None)  # the smoke test goes offscreen by itself
    return subprocess.run(
        [sys.executable, "-m", "cnn_desktop", "gui", "--smoke-test", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_smoke_test_drives_the_window_through_classify_features_and_cam(
    tmp_path: Path, photos, default_bundle
):
    photo = tmp_path / "chelsea.jpg"
    Image.open(photos["chelsea"]).convert("RGB").save(photo, quality=90)

    result = smoke_test(photo, home=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    classified = next(line for line in lines if line.startswith("classified: "))
    assert any(f"chelsea.jpg: {cat} (" in classified for cat in CATS), classified
    assert any(line.startswith("feature maps: conv_stem") for line in lines), lines
    assert any(line.startswith("class-activation map: CAM for") for line in lines), lines
    assert lines[-1].startswith("smoke test passed")
    assert not list(tmp_path.glob(".config/**/*.conf")), "the user's settings were written"


def test_smoke_test_fails_with_one_line_when_the_image_cannot_be_read(
    tmp_path: Path, default_bundle
):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")

    result = smoke_test(broken, home=tmp_path)

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("cnn-desktop:")]
    assert errors and errors[0].startswith("cnn-desktop: error: smoke test: "), result.stderr
    assert "broken.jpg" in errors[0] and "corrupt" in errors[0]
    assert "smoke test passed" not in result.stdout


def test_window_icon_comes_from_the_package_data(qapp):
    icon = app_icon()

    assert not icon.isNull()
    assert {QSize(32, 32), QSize(64, 64), QSize(256, 256)} <= set(icon.availableSizes())
