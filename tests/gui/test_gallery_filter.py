"""The gallery's filter and sort, as a user drives them from the bar above it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from cnn_desktop.core.inference.predict import Prediction
from cnn_desktop.gui.gallery_filter import GalleryFilterBar, GalleryFilterModel
from cnn_desktop.gui.results_model import EntryRole, ImageEntry, ResultsModel


def preds(*pairs: tuple[str, float]) -> tuple[Prediction, ...]:
    return tuple(Prediction(label, i, conf) for i, (label, conf) in enumerate(pairs))


@pytest.fixture
def results(qtbot) -> ResultsModel:
    """Five classified images, one failure, one still pending, in this order."""
    model = ResultsModel()
    model.add_pending([Path("/p/b_cat.jpg"), Path("/p/pending.jpg")])
    model.set_result(
        Path("/p/b_cat.jpg"), preds(("tabby, tabby cat", 0.9), ("tiger cat", 0.05)), None, None
    )
    model.set_result(Path("/p/a_coffee.jpg"), preds(("espresso", 0.6), ("cup", 0.3)), None, None)
    model.set_result(Path("/p/broken.jpg"), (), "image is truncated or corrupt", None)
    model.set_result(
        Path("/p/C_rocket.jpg"), preds(("missile", 0.35), ("projectile", 0.3)), None, None
    )
    model.set_result(
        Path("/p/d_cat.jpg"), preds(("Egyptian cat", 0.75), ("tabby", 0.2)), None, None
    )
    model.set_result(
        Path("/p/e_mug.jpg"), preds(("coffee mug", 0.2), ("espresso", 0.18)), None, None
    )
    return model


@pytest.fixture
def proxy(results: ResultsModel) -> GalleryFilterModel:
    model = GalleryFilterModel()
    model.setSourceModel(results)
    return model


def names(proxy: GalleryFilterModel) -> list[str]:
    return [proxy.index(row, 0).data(EntryRole).path.name for row in range(proxy.rowCount())]


def test_unfiltered_shows_everything_in_order_added(proxy: GalleryFilterModel) -> None:
    assert names(proxy) == [
        "b_cat.jpg",
        "pending.jpg",
        "a_coffee.jpg",
        "broken.jpg",
        "C_rocket.jpg",
        "d_cat.jpg",
        "e_mug.jpg",
    ]
    assert proxy.entry_at(2).path.name == "a_coffee.jpg"


def test_label_filter_matches_top1_case_insensitively_or_any_top_k(proxy) -> None:
    proxy.set_label_filter("CAT")
    assert names(proxy) == ["b_cat.jpg", "d_cat.jpg"]
    proxy.set_label_filter("espresso")
    assert names(proxy) == ["a_coffee.jpg"]
    proxy.set_match_top_k(True)
    assert names(proxy) == ["a_coffee.jpg", "e_mug.jpg"]
    proxy.set_label_filter("")
    assert len(names(proxy)) == 7


def test_min_confidence_and_error_modes(proxy: GalleryFilterModel) -> None:
    proxy.set_min_confidence(0.6)
    assert names(proxy) == ["b_cat.jpg", "a_coffee.jpg", "d_cat.jpg"]
    proxy.set_min_confidence(0.0)
    proxy.set_error_mode("only")
    assert names(proxy) == ["broken.jpg"]
    proxy.set_label_filter("truncated")  # with errors only, the text matches the message
    assert names(proxy) == ["broken.jpg"]
    proxy.set_label_filter("permission")
    assert names(proxy) == []
    proxy.set_label_filter("")
    proxy.set_error_mode("hide")
    assert "broken.jpg" not in names(proxy) and len(names(proxy)) == 6
    with pytest.raises(ValueError):
        proxy.set_error_mode("sometimes")


def test_sort_keys_put_failures_then_pending_last(proxy: GalleryFilterModel) -> None:
    proxy.set_sort_key("confidence")
    assert proxy.sortOrder() == Qt.SortOrder.DescendingOrder
    assert names(proxy) == [
        "b_cat.jpg",
        "d_cat.jpg",
        "a_coffee.jpg",
        "C_rocket.jpg",
        "e_mug.jpg",
        "broken.jpg",
        "pending.jpg",
    ]
    proxy.set_sort_key("confidence", Qt.SortOrder.AscendingOrder)
    assert names(proxy)[:2] == ["e_mug.jpg", "C_rocket.jpg"]
    assert names(proxy)[-2:] == ["broken.jpg", "pending.jpg"]
    proxy.set_sort_key("name")
    assert names(proxy)[:5] == [
        "a_coffee.jpg",
        "b_cat.jpg",
        "C_rocket.jpg",
        "d_cat.jpg",
        "e_mug.jpg",
    ]
    proxy.set_sort_key("label")  # same column and order as "name": must still re-sort
    assert names(proxy)[:5] == [
        "e_mug.jpg",
        "d_cat.jpg",
        "a_coffee.jpg",
        "C_rocket.jpg",
        "b_cat.jpg",
    ]
    proxy.set_sort_key("order added")
    assert names(proxy)[:3] == ["b_cat.jpg", "pending.jpg", "a_coffee.jpg"]


def test_arriving_results_are_filtered_and_placed_at_once(results, proxy) -> None:
    proxy.set_sort_key("confidence")
    proxy.set_label_filter("cat")
    assert "pending.jpg" not in names(proxy)
    results.set_result(Path("/p/pending.jpg"), preds(("Persian cat", 0.8)), None, None)
    assert names(proxy) == ["b_cat.jpg", "pending.jpg", "d_cat.jpg"]
    results.set_result(Path("/p/new.jpg"), preds(("lynx", 0.99)), None, None)
    assert "new.jpg" not in names(proxy)
    results.set_result(Path("/p/new2.jpg"), preds(("cat", 0.99)), None, None)
    assert names(proxy)[0] == "new2.jpg"


def test_bar_widgets_drive_the_proxy_and_count(qtbot, results, proxy) -> None:
    bar = GalleryFilterBar(proxy)
    qtbot.addWidget(bar)
    assert bar.count.text() == "7 images"
    qtbot.keyClicks(bar.text, "cat")
    assert proxy.label_filter == "cat"
    assert bar.count.text() == "2 of 7 images"
    results.set_result(Path("/p/pending.jpg"), preds(("Persian cat", 0.8)), None, None)
    assert bar.count.text() == "3 of 7 images"
    results.set_result(Path("/p/hidden.jpg"), preds(("lynx", 0.5)), None, None)
    assert bar.count.text() == "3 of 8 images"  # the total counts rows the filter hides
    bar.text.clear()
    bar.confidence.setValue(70)
    assert proxy.min_confidence == pytest.approx(0.7)
    assert bar.confidence_label.text() == "≥ 70 %"
    assert bar.count.text() == "3 of 8 images"
    bar.confidence.setValue(0)
    bar.sort.setCurrentIndex(bar.sort.findData("confidence"))
    assert proxy.sort_key == "confidence"
    assert names(proxy)[0] == "b_cat.jpg"
    bar.errors_only.click()
    assert proxy.error_mode == "only"
    assert names(proxy) == ["broken.jpg"] and bar.count.text() == "1 of 8 images"
    results.clear()
    assert bar.count.text() == "0 images"


def test_ten_thousand_rows_are_filtered_sorted_and_placed_live_in_order(qtbot) -> None:
    """Behaviour at scale (the time it takes is for benchmarks, not tests): every filter and
    sort over 10,000 rows gives exactly the expected rows in the expected order, and results
    arriving while sorted by confidence are placed where they belong."""
    labels = ("tabby", "espresso", "missile", "tiger cat")
    results = ResultsModel()
    paths = [Path(f"/big/img_{i:05d}.jpg") for i in range(10_000)]
    results.add_pending(paths)
    # 9,700 results filled in quietly (one dataChanged per result costs PySide6 6.12.0 on
    # Python 3.11 a reference to True: tens of thousands of emits crash the interpreter).
    for i, path in enumerate(paths[:9_700]):
        results._entries[i] = ImageEntry(path, None, one_result(labels, i), None, False)
    proxy = GalleryFilterModel()
    proxy.setSourceModel(results)
    bar = GalleryFilterBar(proxy)
    qtbot.addWidget(bar)

    def shown() -> list[ImageEntry]:
        return [proxy.entry_at(row) for row in range(proxy.rowCount())]

    def confidences() -> list[float]:
        return [e.top1.confidence for e in shown() if e.top1 is not None]

    proxy.set_sort_key("confidence")
    assert confidences() == sorted(confidences(), reverse=True) and len(confidences()) == 9_700
    assert all(e.pending for e in shown()[9_700:]), "pending images last"
    bar.text.setText("cat")  # "tiger cat": every 4th result, pending images hidden
    assert [e.top1.label for e in shown()] == ["tiger cat"] * 2_425
    assert confidences() == sorted(confidences(), reverse=True)
    assert bar.count.text() == "2425 of 10000 images"
    bar.text.setText("t")  # "tabby" and "tiger cat"
    proxy.set_sort_key("label")
    assert [e.top1.label for e in shown()] == ["tabby"] * 2_425 + ["tiger cat"] * 2_425
    proxy.set_sort_key("name")
    assert [e.path for e in shown()] == [p for i, p in enumerate(paths[:9_700]) if i % 4 in (0, 3)]
    bar.text.clear()
    assert proxy.rowCount() == 10_000

    proxy.set_sort_key("confidence")
    for i, path in enumerate(paths[9_700:], start=9_700):  # results arriving, placed live
        results.set_result(path, one_result(labels, i), None, None)
    assert proxy.rowCount() == 10_000
    assert len(confidences()) == 10_000
    assert confidences() == sorted(confidences(), reverse=True)
    assert proxy.entry_at(0).top1.confidence == max(e.top1.confidence for e in results.entries())
    assert bar.count.text() == "10000 images"


def one_result(labels: tuple[str, ...], i: int) -> tuple[Prediction, ...]:
    return preds((labels[i % len(labels)], (i * 7919 % 10_000) / 10_000))
