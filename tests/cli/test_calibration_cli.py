"""`cnn-desktop train` says in one line what calibration did (subprocess, real head training)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.core.test_calibration import write_split_digits


def test_train_prints_the_temperature_and_the_ece_before_and_after(tmp_path: Path) -> None:
    data = write_split_digits(tmp_path / "digits", classes=3, per_class=30)
    done = subprocess.run(
        [sys.executable, "-m", "cnn_desktop", "train", str(data), "--out", str(tmp_path / "m"),
         "--epochs", "20", "--quiet"],
        capture_output=True, text=True, env=dict(os.environ), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    bundle = Path(lines[-1])  # the model's path stays the last line
    block = json.loads((bundle / "metrics.json").read_text())["calibration"]
    expected = (
        f"calibration: temperature {block['temperature']:.2f}, "
        f"ECE {block['ece_before']:.3f} → {block['ece_after']:.3f} (validation; "
        f"test {block['test']['ece_before']:.3f} → {block['test']['ece_after']:.3f})"
    )
    assert [line for line in lines if line.startswith("calibration:")] == [expected]
