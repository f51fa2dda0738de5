"""The window's open-model path refuses hostile model files (built by
tests/core/test_hostile_models.py) with one notification each, keeps the model it runs, and
creates no ONNX Runtime session for it nor opens a planted FIFO."""

from __future__ import annotations

from pathlib import Path

import onnxruntime
import pytest

from cnn_desktop.gui.main_window import MainWindow
from tests.core.test_hostile_models import BY_ID, release_fifo_readers
from tests.gui.conftest import LOAD_TIMEOUT_MS, errors

CASES = [
    "external-data-through-a-link",
    "external-data-absolute",
    "a-million-class-names",
    "huge-initializer",
    "symlink-loop",
    "weights-a-fifo",
    "onnx-dev-zero",
]


def test_opening_hostile_models_shows_one_error_each_and_keeps_the_model(
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = window.active_model
    sessions: list[object] = []
    real_session = onnxruntime.InferenceSession

    def record(model, *args, **kwargs):
        """Sessions of the running model (its feature maps) go on; a hostile one is noted."""
        if isinstance(model, (str, Path)) and Path(model).is_relative_to(tmp_path):
            sessions.append(model)
            raise AssertionError("an ONNX Runtime session was created for a hostile model")
        return real_session(model, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", record)
    for number, case_id in enumerate(CASES, start=1):
        case = BY_ID[case_id]
        folder = tmp_path / case_id
        folder.mkdir()
        window.open_model(str(case.build(folder)))
        qtbot.waitUntil(lambda n=number: len(errors(window)) >= n, timeout=LOAD_TIMEOUT_MS)
        qtbot.waitUntil(lambda: not window.runner.active, timeout=LOAD_TIMEOUT_MS)
        assert len(errors(window)) == number, errors(window)
        message = errors(window)[-1]
        assert message.startswith("Could not open the model: "), message
        assert case.fragment in message and "\n" not in message, (case_id, message)
        assert window.active_model is running
    assert sessions == []
    assert release_fifo_readers(tmp_path) == 0
