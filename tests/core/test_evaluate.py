"""Scoring a model on labelled images: metrics by hand, and the built-in model on real photos."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from cnn_desktop.core.tasks import Cancelled, CancelToken
from cnn_desktop.core.training.evaluate import (
    Evaluation,
    compute_metrics,
    evaluate_folder,
    evaluate_items,
)
from tests.datasets import write_photo_dataset

JSON_KEYS = {
    "accuracy",
    "classes",
    "per_class",
    "confusion_matrix",
    "errors",
    "misclassified",
    "unknown",  # None: the built-in model has no unknown detector
}


def test_metrics_match_a_hand_computed_example() -> None:
    # true a a a b b c / predicted a a b b c c
    evaluation = compute_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], ["a", "b", "c"])
    assert evaluation.confusion_matrix == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert evaluation.accuracy == pytest.approx(4 / 6)
    expected = {
        # precision = hits / predicted as the class, recall = hits / truly the class
        "a": (2 / 2, 2 / 3, 0.8),  # F1 = 2 * 1 * 2/3 / (1 + 2/3) = 0.8
        "b": (1 / 2, 1 / 2, 0.5),
        "c": (1 / 2, 1 / 1, 2 / 3),  # F1 = 2 * 0.5 * 1 / 1.5
    }
    for name, (precision, recall, f1) in expected.items():
        metrics = evaluation.per_class[name]
        assert metrics["precision"] == pytest.approx(precision)
        assert metrics["recall"] == pytest.approx(recall)
        assert metrics["f1"] == pytest.approx(f1)
    assert [evaluation.per_class[name]["support"] for name in "abc"] == [3, 2, 1]
    assert evaluation.count == 6


def test_classes_never_predicted_score_zero_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluation = compute_metrics([0, 1, 2, 2], [0, 1, 1, 1], ["cat", "dog", "fox", "owl"])
    assert evaluation.per_class["fox"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert evaluation.per_class["owl"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert evaluation.per_class["dog"]["precision"] == pytest.approx(1 / 3)
    assert evaluation.per_class["dog"]["recall"] == 1.0
    assert evaluation.per_class["dog"]["f1"] == pytest.approx(0.5)  # 2 * 1/3 * 1 / (4/3)
    assert evaluation.accuracy == 0.5


def test_metrics_refuse_inconsistent_labels() -> None:
    with pytest.raises(ValueError, match="3 true labels but 2 predictions"):
        compute_metrics([0, 1, 1], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="between 0 and 1"):
        compute_metrics([0, 2], [0, 1], ["a", "b"])


def test_no_images_gives_zero_accuracy_and_says_so() -> None:
    evaluation = compute_metrics([], [], ["a", "b"])
    assert evaluation.accuracy == 0.0 and evaluation.count == 0
    assert evaluation.table().startswith("No images could be evaluated.")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Crops of real photos in folders named after ImageNet classes, plus a few problems."""
    root = tmp_path_factory.mktemp("photos")
    classes = {"Egyptian cat": "chelsea", "espresso": "coffee", "my cat": "chelsea"}
    written = write_photo_dataset(root, per_class=6, size=128, classes=classes)
    for path in written["my cat"][3:]:
        path.unlink()  # 3 images of a class the model does not have
    (root / "espresso" / "broken.jpg").write_bytes(b"")
    shutil.copyfile(written["espresso"][0], root / "Egyptian cat" / "mislabelled.jpg")
    return root


@pytest.fixture(scope="module")
def photo_evaluation(onnx_classifier, photo_folder: Path) -> Evaluation:
    return evaluate_folder(onnx_classifier, photo_folder)


def test_builtin_model_scores_real_photos_by_class_name(default_bundle, photo_evaluation) -> None:
    evaluation = photo_evaluation
    assert evaluation.count == 11  # 6 cats + 5 espressos (one copy was ambiguous)
    assert evaluation.accuracy >= 0.8
    assert evaluation.per_class["Egyptian cat"]["recall"] >= 0.8
    assert evaluation.per_class["espresso"]["recall"] >= 0.8
    assert evaluation.per_class["Egyptian cat"]["support"] == 6
    assert evaluation.per_class["espresso"]["support"] == 5
    model_order = list(default_bundle.spec.class_names)
    positions = [model_order.index(name) for name in evaluation.classes]
    assert positions == sorted(positions)  # the model's order, whatever the folder order
    assert "my cat" not in evaluation.classes
    wrong = len(evaluation.misclassified)
    assert wrong == evaluation.count - round(evaluation.accuracy * evaluation.count)
    confidences = [item["confidence"] for item in evaluation.misclassified]
    assert confidences == sorted(confidences, reverse=True)


def test_json_report_has_exactly_the_cli_keys(photo_evaluation: Evaluation) -> None:
    report = json.loads(json.dumps(photo_evaluation.to_dict()))
    assert set(report) == JSON_KEYS
    assert report["unknown"] is None
    assert report["classes"] == photo_evaluation.classes
    assert set(report["per_class"]) == set(report["classes"])
    for metrics in report["per_class"].values():
        assert set(metrics) == {"precision", "recall", "f1", "support"}
    size = len(report["classes"])
    assert len(report["confusion_matrix"]) == size
    assert all(len(row) == size for row in report["confusion_matrix"])
    assert all(set(error) == {"path", "error"} for error in report["errors"])
    for item in report["misclassified"]:
        assert set(item) == {"path", "true", "predicted", "confidence"}


def test_folder_problems_become_errors_not_metrics(photo_folder, photo_evaluation) -> None:
    errors = {Path(error["path"]): error["error"] for error in photo_evaluation.errors}
    unknown = sorted((photo_folder / "my cat").iterdir())
    assert len(unknown) == 3
    for path in unknown:
        assert errors[path] == "class 'my cat' is not one of the model's classes"
    assert errors[photo_folder / "espresso" / "broken.jpg"] == "file is empty"
    assert errors[photo_folder / "Egyptian cat" / "mislabelled.jpg"].startswith(
        "same image also in class 'espresso'"
    )
    assert len(errors) == 6


def test_text_report_names_classes_and_problems(photo_evaluation: Evaluation) -> None:
    text = photo_evaluation.table()
    assert text.startswith(f"Accuracy: {photo_evaluation.accuracy:.2%} (")
    assert "Egyptian cat" in text and "espresso" in text
    assert "Confusion matrix (rows: true class, columns: predicted class)" in text
    assert "Not evaluated (6):" in text and "file is empty" in text


def test_split_layout_is_scored_on_test_else_val(tmp_path: Path, onnx_classifier) -> None:
    photos = {"Egyptian cat": "chelsea", "espresso": "coffee"}
    write_photo_dataset(tmp_path / "train", per_class=2, size=96, classes=photos)
    write_photo_dataset(tmp_path / "val", 2, 96, {"Egyptian cat": "chelsea"}, seed=5)
    write_photo_dataset(tmp_path / "test", 3, 96, {"espresso": "coffee"}, seed=9)

    on_test = evaluate_folder(onnx_classifier, tmp_path)
    assert on_test.count == 3 and on_test.per_class["espresso"]["support"] == 3
    assert on_test.per_class["Egyptian cat"]["support"] == 0

    shutil.rmtree(tmp_path / "test")
    on_val = evaluate_folder(onnx_classifier, tmp_path)
    assert on_val.count == 2 and on_val.per_class["Egyptian cat"]["support"] == 2


def test_all_model_classes_are_kept_when_labels_use_them(onnx_classifier, photos) -> None:
    names = list(onnx_classifier.spec.class_names)
    espresso = names.index("espresso")
    evaluation = evaluate_items(onnx_classifier, [(photos["coffee_jpg"], espresso)], names)
    assert evaluation.classes == names and evaluation.accuracy == 1.0
    assert f"Confusion matrix left out ({len(names)} classes)" in evaluation.table()

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        evaluate_items(onnx_classifier, [(photos["coffee"], espresso)], names, cancel=token)
