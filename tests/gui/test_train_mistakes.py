"""The Train tab's confusion matrix leads to the images behind each mistake.

The dataset is made so that mistakes are certain: both classes hold the same handwritten
digit, each copy with a little random noise, so nothing tells the classes apart. The model
can only answer one class for all of them, and the stratified split puts images of both
classes in the validation set: one off-diagonal cell of the matrix is never empty.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from cnn_desktop.gui.runner import TaskRunner
from cnn_desktop.gui.train_panel import TrainPanel
from tests.gui.conftest import isolated_settings

SCAN_MS = 20_000
TRAIN_MS = 90_000
PER_CLASS = 15


def write_indistinguishable_classes(folder: Path, per_class: int = PER_CLASS) -> None:
    """Two classes, ``x`` and ``y``, of one digit with random noise (every file distinct)."""
    from sklearn.datasets import load_digits

    digit = (load_digits().images[0] * (255 / 16)).astype(np.float32)
    base = np.asarray(Image.fromarray(digit.astype(np.uint8)).resize((28, 28)), np.float32)
    rng = np.random.default_rng(5)
    for name in ("x", "y"):
        (folder / name).mkdir(parents=True)
        for n in range(per_class):
            noisy = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy, "L").save(folder / name / f"{name}_{n:02d}.png")


@pytest.fixture
def panel(qtbot, tmp_path: Path):
    runner = TaskRunner()
    panel = TrainPanel(runner, isolated_settings(tmp_path / "settings.ini"))
    qtbot.addWidget(panel)
    panel.resize(1300, 850)
    yield panel
    runner.shutdown(30)


def test_a_mistake_cell_lists_its_images_and_shows_one_with_its_predicted_class(
    qtbot, panel: TrainPanel, tmp_path: Path
) -> None:
    data = tmp_path / "same"
    write_indistinguishable_classes(data)
    panel.set_data_folder(data)
    qtbot.waitUntil(lambda: panel.report is not None and not panel.runner.active, timeout=SCAN_MS)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("scratch"))
    panel.arch_combo.setCurrentIndex(panel.arch_combo.findData("lenet5"))
    panel.epochs_spin.setValue(2)
    (tmp_path / "out").mkdir()
    panel.output_edit.setText(str(tmp_path / "out" / "same.cnnmodel"))
    shown: list[tuple[str, int]] = []
    panel.show_image.connect(lambda path, index: shown.append((path, index)))
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.handle is None, timeout=TRAIN_MS)
    assert "Training failed" not in panel.run_view.status()

    results, matrix = panel.results, panel.results.matrix
    val_per_class = round(PER_CLASS * 0.2)
    assert [sum(row) for row in matrix.counts] == [val_per_class, val_per_class]
    mistakes = [(t, p) for t in range(2) for p in range(2) if t != p and matrix.counts[t][p]]
    assert mistakes, f"the classes cannot be told apart, yet no mistake: {matrix.counts}"
    true, predicted = mistakes[0]
    matrix.cell_clicked.emit(true, predicted)
    listed = results.cell_images.paths()
    assert len(listed) == matrix.counts[true][predicted]
    assert all(Path(path).parent == data / ("x", "y")[true] for path in listed), listed
    assert f"predicted as {('x', 'y')[predicted]}" in results.cell_images.title.text()
    qtbot.waitUntil(lambda: not panel.runner.active, timeout=SCAN_MS)  # thumbnails loaded
    results.cell_images.list.setCurrentRow(0)
    assert shown == [(listed[0], predicted)]
