"""The gallery with a model that has an unknown detector (real window, pytest-qt): photos shown
to a five-digit model read "Unknown (closest: …)", known digits read as their class, and
"Unknown only" shows just the unknown ones; the built-in model marks nothing unknown."""

from __future__ import annotations

import pytest

from cnn_desktop.gui.main_window import MainWindow
from tests.gui.conftest import CLASSIFY_TIMEOUT_MS, drop, wait_all_classified
from tests.unknown_models import FiveDigitModel, train_five_digit_model


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory) -> FiveDigitModel:
    return train_five_digit_model(tmp_path_factory.mktemp("five-digits-gui"))


def shown_captions(window: MainWindow) -> list[str]:
    proxy = window.filter_model
    return [proxy.entry_at(row).caption() for row in range(proxy.rowCount())]


def test_unknown_images_read_unknown_closest_and_the_filter_selects_them(
    qtbot, window: MainWindow, five: FiveDigitModel
) -> None:
    window.open_model(str(five.bundle.path))
    qtbot.waitUntil(
        lambda: (
            window.active_model is not None
            and window.active_model.bundle.path == five.bundle.path
            and not window.runner.active
        ),
        timeout=CLASSIFY_TIMEOUT_MS,
    )
    photos, digits = five.photos[:4], five.held_out[:6]
    drop(window, [*photos, *digits])
    wait_all_classified(qtbot, window, len(photos) + len(digits))
    entries = {entry.path: entry for entry in window.results.entries()}
    for path in photos:
        entry = entries[path]
        assert entry.unknown is True
        verdict = entry.caption().split("\n", 1)[1]
        assert verdict.startswith(f"Unknown (closest: {entry.top1.label} — "), verdict
    known = [entries[path] for path in digits if entries[path].unknown is False]
    assert len(known) >= 4
    assert all(e.caption().endswith(f"\n{e.top1.label} — {e.top1.confidence:.1%}") for e in known)

    bar = window.filter_bar
    bar.unknown_only.setChecked(True)  # as a click does
    assert window.filter_model.unknown_only
    shown = {
        window.filter_model.entry_at(row).path for row in range(window.filter_model.rowCount())
    }
    assert shown == {path for path, entry in entries.items() if entry.unknown}
    assert set(photos) <= shown
    assert f"{len(shown)} of {len(entries)} images" == bar.count.text()
    assert all("Unknown (closest: " in caption for caption in shown_captions(window))
    bar.unknown_only.setChecked(False)
    assert window.filter_model.rowCount() == len(entries)


def test_the_built_in_model_marks_nothing_unknown(qtbot, window: MainWindow, photos) -> None:
    qtbot.waitUntil(lambda: window.active_model is not None, timeout=CLASSIFY_TIMEOUT_MS)
    drop(window, [photos["chelsea"], photos["coffee"]])
    wait_all_classified(qtbot, window, 2)
    assert [e.unknown for e in window.results.entries()] == [None, None]
    assert not any("Unknown" in caption for caption in shown_captions(window))
    window.filter_bar.unknown_only.setChecked(True)
    assert window.filter_model.rowCount() == 0
