"""The unknown ("none of these") detector: its maths on synthetic embeddings, a real head model
trained on five digit classes that calls photos and other digits unknown and keeps most known
digits, the detector surviving save and load, and hostile detector files refused in one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

from cnn_desktop.core.inference import classify_paths, open_classifier
from cnn_desktop.core.inference.unknown import knn_distance, unknown_scores
from cnn_desktop.core.models import unknown as unknown_file
from cnn_desktop.core.models.bundle import BundleError, load_bundle
from cnn_desktop.core.models.unknown import UNKNOWN_FILE
from cnn_desktop.core.training.evaluate import evaluate_items
from cnn_desktop.core.training.unknown import KEEP_RATE, fit_unknown_detector
from tests.unknown_models import FiveDigitModel, train_five_digit_model

WIDTH, CLASSES = 64, 3


def clusters(count: int, seed: int, spread: float = 0.0125) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings around one direction per class, and their labels."""
    rng = np.random.default_rng(seed)
    centres = np.eye(WIDTH)[:CLASSES] * 4.0
    labels = np.arange(count) % CLASSES
    return centres[labels] + rng.normal(0, spread * 4.0, (count, WIDTH)), labels


def confident(labels: np.ndarray, sure: float = 0.97) -> np.ndarray:
    probabilities = np.full((len(labels), CLASSES), (1 - sure) / (CLASSES - 1))
    probabilities[np.arange(len(labels)), labels] = sure
    return probabilities


def fitted():
    train_x, train_y = clusters(300, seed=0)
    val_x, val_y = clusters(200, seed=1)
    rng = np.random.default_rng(2)
    val_p = confident(val_y, 0.9) + rng.uniform(0, 0.05, (len(val_y), CLASSES))
    val_p /= val_p.sum(1, keepdims=True)
    return fit_unknown_detector(train_x, train_y, val_p, val_x)


# --------------------------------------------------------------------------- the maths


def test_the_threshold_keeps_95_percent_of_validation_images_and_new_ones_alike() -> None:
    detector, block = fitted()
    assert detector is not None
    assert block["validation_keep_rate"] == pytest.approx(KEEP_RATE, abs=0.01)
    assert block["method"] == detector.method and block["bank_size"] == 300
    fresh_x, fresh_y = clusters(600, seed=5)
    scores = unknown_scores(detector, confident(fresh_y, 0.92), fresh_x)
    assert np.mean(scores > detector.threshold) < 0.12


def test_far_images_are_caught_by_the_distance_even_when_the_softmax_is_sure() -> None:
    detector, _ = fitted()
    rng = np.random.default_rng(9)
    far = rng.normal(0, 1.0, (50, WIDTH))
    far[:, :CLASSES] = 0  # unlike every class, yet the classifier is sure of one
    scores = unknown_scores(detector, confident(np.zeros(50, int), 0.999), far)
    assert (scores > detector.threshold).all()


def test_images_between_classes_are_caught_by_the_softmax_even_near_training_images() -> None:
    detector, _ = fitted()
    near, labels = clusters(50, seed=11)
    torn = np.full((50, CLASSES), 1 / CLASSES)  # the model cannot choose
    assert (unknown_scores(detector, torn, near) > detector.threshold).all()
    assert np.mean(unknown_scores(detector, confident(labels), near) > detector.threshold) < 0.1


def test_knn_distance_is_one_minus_the_kth_nearest_cosine() -> None:
    bank = np.eye(4, dtype=np.float32)
    query = np.array([[1.0, 1.0, 0.0, 0.0]])
    assert knn_distance(bank, query, 1)[0] == pytest.approx(1 - 1 / np.sqrt(2))
    assert knn_distance(bank, query, 3)[0] == pytest.approx(1.0)


def test_too_few_validation_images_make_no_detector_and_say_why() -> None:
    x, y = clusters(30, seed=0)
    detector, block = fit_unknown_detector(x, y, confident(y[:5]), x[:5])
    assert detector is None and block["method"] is None
    assert "5 validation images" in block["reason"]


# --------------------------------------------------------------------------- a real model


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory) -> FiveDigitModel:
    return train_five_digit_model(tmp_path_factory.mktemp("five-digits"))


def verdicts(bundle, paths: list[Path]) -> list[bool | None]:
    classifier = open_classifier(bundle, "onnx", "cpu")
    return [result.unknown for result in classify_paths(paths, classifier, top_k=1)]


def test_a_head_model_on_five_digits_calls_photos_unknown_and_keeps_known_digits(
    five: FiveDigitModel,
) -> None:
    metrics = json.loads((five.bundle.path / "metrics.json").read_text())
    assert metrics["unknown"]["validation_keep_rate"] >= 0.9
    assert (five.bundle.path / UNKNOWN_FILE).is_file()
    photos = verdicts(five.bundle, five.photos)
    assert sum(photos) / len(photos) >= 0.95, photos
    known = verdicts(five.bundle, five.held_out)
    assert sum(known) / len(known) <= 0.2, known
    others = verdicts(five.bundle, five.other_digits)
    assert sum(others) / len(others) > sum(known) / len(known)
    classifier = open_classifier(five.bundle, "onnx", "cpu")
    evaluation = evaluate_items(
        classifier, [(p, int(p.parent.name)) for p in five.held_out], [str(d) for d in range(5)]
    )
    assert evaluation.unknown["rate"] == pytest.approx(sum(known) / len(known))
    assert evaluation.unknown["accuracy_of_known"] >= 0.9
    assert evaluation.to_dict()["unknown"] == evaluation.unknown


def test_the_detector_survives_save_and_load(five: FiveDigitModel, tmp_path: Path) -> None:
    copy = tmp_path / "copy.cnnmodel"
    shutil.copytree(five.bundle.path, copy)
    reloaded = load_bundle(copy)
    assert reloaded.unknown is not None and five.bundle.unknown is not None
    assert reloaded.unknown.describe() == five.bundle.unknown.describe()
    np.testing.assert_array_equal(reloaded.unknown.bank, five.bundle.unknown.bank)
    paths = five.photos[:4] + five.held_out[:4]
    assert verdicts(reloaded, paths) == verdicts(five.bundle, paths)
    (copy / UNKNOWN_FILE).unlink()  # a model without one (trained before detectors existed)
    assert load_bundle(copy).unknown is None
    assert set(verdicts(load_bundle(copy), paths)) == {None}


def test_unknown_off_decides_nothing(five: FiveDigitModel) -> None:
    classifier = open_classifier(five.bundle, "onnx", "cpu")
    results = list(classify_paths(five.photos[:3], classifier, unknown="off"))
    assert [r.unknown for r in results] == [None] * 3
    assert all(r.to_dict()["unknown"] is None for r in results)


def test_with_tta_the_plain_image_decides_unknown_and_the_views_the_probabilities(
    five: FiveDigitModel,
) -> None:
    classifier = open_classifier(five.bundle, "onnx", "cpu")
    paths = five.photos[:4] + five.held_out[:6]
    plain = list(classify_paths(paths, classifier, top_k=5))
    with_tta = list(classify_paths(paths, classifier, top_k=5, tta=True))
    assert [r.unknown for r in with_tta] == [r.unknown for r in plain]
    assert [r.plain_index for r in with_tta] == [r.predictions[0].index for r in plain]
    assert all(r.plain_index is None for r in plain)
    changed = [
        abs(a.predictions[0].confidence - b.predictions[0].confidence)
        for a, b in zip(plain, with_tta, strict=True)
    ]
    assert max(changed) > 1e-4  # the views were averaged, not the plain image repeated
    evaluation = evaluate_items(
        classifier,
        [(p, int(p.parent.name)) for p in five.held_out],
        [str(d) for d in range(5)],
        tta=True,
    )
    assert evaluation.unknown is not None and evaluation.tta is not None


def _bank_file(bank: np.ndarray, **changes: object) -> bytes:
    detector = detector_metadata()
    detector.update(changes)
    return save({"bank": bank}, metadata={"unknown": json.dumps(detector)})


def detector_metadata() -> dict:
    return {
        "format_version": 1,
        "method": unknown_file.METHOD,
        "neighbours": 3,
        "softmax_center": 0.01,
        "softmax_scale": 0.2,
        "distance_center": 0.05,
        "distance_scale": 0.03,
        "threshold": 1.5,
        "keep_rate": 0.95,
    }


def hostile_files(width: int) -> dict[str, tuple[bytes | None, str]]:
    """Name → (file bytes, or None for a special file made by the test; expected message)."""
    good = (np.ones((10, width)) / np.sqrt(width)).astype(np.float16)
    nan = good.copy()
    nan[3, 3] = np.nan
    return {
        "empty": (b"", "too short"),
        "truncated": (_bank_file(good)[:200], "not a valid unknown detector"),
        "not safetensors": (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}", "header"),
        "float64 bank": (_bank_file(good.astype(np.float64)), "float16"),
        "NaN in the bank": (_bank_file(nan), "not finite"),
        "wrong width": (_bank_file(np.ones((10, 7), np.float16)), "does not fit the model"),
        "infinite threshold": (_bank_file(good, threshold=float("inf")), "'threshold'"),
        "k above the bank": (_bank_file(good, neighbours=11), "'neighbours'"),
        "zero scale": (_bank_file(good, distance_scale=0), "positive"),
        "foreign method": (_bank_file(good, method="pickle"), "method"),
        "newer format": (_bank_file(good, format_version=99), "newer"),
        "a fifo": (None, "is not a regular file (a FIFO)"),
    }


@pytest.mark.parametrize("case", list(hostile_files(1280)))
def test_a_hostile_or_corrupt_detector_file_is_refused_in_one_line(
    case: str, five: FiveDigitModel, tmp_path: Path
) -> None:
    data, expected = hostile_files(five.bundle.unknown.width)[case]
    copy = tmp_path / "model.cnnmodel"
    shutil.copytree(five.bundle.path, copy)
    target = copy / UNKNOWN_FILE
    target.unlink()
    if data is None:
        os.mkfifo(target)  # reading it would block forever
    else:
        target.write_bytes(data)
    with pytest.raises(BundleError) as caught:
        load_bundle(copy)
    message = str(caught.value)
    assert "\n" not in message and UNKNOWN_FILE in message
    assert expected in message, message


def test_a_detector_file_over_the_size_limit_is_refused_unread(
    five: FiveDigitModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "model.cnnmodel"
    shutil.copytree(five.bundle.path, copy)
    monkeypatch.setattr(unknown_file, "MAX_UNKNOWN_BYTES", 1000)
    with pytest.raises(BundleError, match="larger than 1,000 bytes"):
        load_bundle(copy)
