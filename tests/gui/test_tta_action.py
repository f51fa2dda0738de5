"""View → Test-Time Augmentation: ticking it classifies what is listed again with the
probabilities averaged over the views, and the choice is remembered.

The window runs the hand-built red-spot model: an 8-px red square in the image's corner is
"red" to the plain input and "plain" with TTA (three corner crops lose it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnn_desktop.core.inference.tta import tta_views
from cnn_desktop.gui.main_window import MainWindow
from tests.gui.conftest import (
    LOAD_TIMEOUT_MS,
    close_window,
    drop,
    entry_named,
    errors,
    isolated_settings,
    stop_jobs,
    wait_all_classified,
)
from tests.gui.test_window_actions import all_menu_actions
from tests.spot_model import red_square_image, write_spot_model


@pytest.fixture
def spot_window(qtbot, tmp_path: Path):
    model = write_spot_model(tmp_path)

    def make() -> MainWindow:
        window = MainWindow(isolated_settings(tmp_path / "settings.ini"), str(model))
        qtbot.addWidget(window, before_close_func=stop_jobs)
        window.show()
        qtbot.waitUntil(lambda: window.active_model is not None, timeout=LOAD_TIMEOUT_MS)
        return window

    return make


def test_the_view_menu_action_reclassifies_with_tta_and_is_remembered(
    qtbot, spot_window, tmp_path: Path
) -> None:
    corner = red_square_image((64, 64), (2, 2, 10, 10), tmp_path / "corner.png")
    centre = red_square_image((64, 64), (28, 28, 36, 36), tmp_path / "centre.png")
    window = spot_window()
    action = dict(all_menu_actions(window))[
        "View → Test-Time Augmentation (Average Flips and Crops)"
    ]
    assert action.isCheckable() and not action.isChecked()
    drop(window, [tmp_path / "corner.png", tmp_path / "centre.png"])
    wait_all_classified(qtbot, window, 2)
    assert entry_named(window, "corner.png").top1.label == "red"

    action.trigger()  # as a click on the menu entry does

    assert action.isChecked() and window.settings.tta
    wait_all_classified(qtbot, window, 2)
    classifier = window.active_model.classifier
    for name, image in (("corner.png", corner), ("centre.png", centre)):
        expected = classifier.predict(tta_views(image, classifier.spec)).mean(axis=0)
        predictions = entry_named(window, name).predictions
        got = {p.label: p.confidence for p in predictions}
        assert got == pytest.approx({"red": expected[0], "plain": expected[1]}, abs=1e-5)
    assert entry_named(window, "corner.png").top1.label == "plain"
    assert entry_named(window, "centre.png").top1.label == "red"
    close_window(qtbot, window)

    again = spot_window()  # the same settings file: TTA stays on
    again_action = dict(all_menu_actions(again))[
        "View → Test-Time Augmentation (Average Flips and Crops)"
    ]
    assert again_action.isChecked()
    drop(again, [tmp_path / "corner.png"])
    wait_all_classified(qtbot, again, 1)
    assert entry_named(again, "corner.png").top1.label == "plain"

    again_action.trigger()  # off again: the plain prediction comes back

    wait_all_classified(qtbot, again, 1)
    assert not again.settings.tta
    assert entry_named(again, "corner.png").top1.label == "red"
    assert not errors(again)
