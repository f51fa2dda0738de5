"""Fixtures of the run-store tests: a store of their own and a small real data set."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.datasets import write_digits_dataset


@pytest.fixture
def runs_env(tmp_path: Path) -> dict[str, str]:
    """Environment variables giving a CLI process a run store in ``tmp_path/runs``."""
    return {"CNN_DESKTOP_RUNS_DIR": str(tmp_path / "runs")}


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    """60 handwritten digits (0, 1, 2) as class folders: a head trains on them in seconds."""
    data = tmp_path / "digits"
    write_digits_dataset(data, per_class=20, classes=range(3))
    return data
