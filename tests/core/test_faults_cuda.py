"""ONNX Runtime's CUDA provider failing at session creation (injected: this machine has no
GPU): with ``auto`` the model runs on the CPU and says why; ``cuda`` asked for is an error;
a machine without a GPU hears nothing about CUDA."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from cnn_desktop.core.imaging.preprocess import load_and_preprocess
from cnn_desktop.core.inference.backends import BackendError, open_classifier
from cnn_desktop.core.inference.devices import onnx_provider_status
from cnn_desktop.core.inference.predict import top_predictions
from cnn_desktop.core.training.embeddings import EmbeddingModel
from tests.fault_injection import CUDA, CUDA_ERROR, break_cuda

CATS = ("tabby", "tiger cat", "Egyptian cat")
NOTICE = f"CUDA (ONNX Runtime's CUDA provider) failed ({CUDA_ERROR}); running on the CPU"
FELL_BACK = "no usable GPU or GPU libraries; ONNX Runtime fell back to the CPU"


@pytest.fixture(autouse=True)
def fresh_provider_probe() -> Iterator[None]:
    """The cached provider probe sees each test's fault, and none outlives it."""
    onnx_provider_status.cache_clear()
    yield
    onnx_provider_status.cache_clear()


def assert_classifies_the_cat(classifier, photos) -> None:
    batch = np.stack([load_and_preprocess(photos["chelsea"], classifier.spec)])
    top = top_predictions(classifier.predict(batch)[0], classifier.spec.class_names, 1)
    assert top[0].label in CATS


def test_cuda_failing_its_test_session_runs_on_the_cpu_with_a_notice(
    default_bundle, photos, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_cuda(monkeypatch.setattr)
    assert onnx_provider_status(CUDA).tried and not onnx_provider_status(CUDA).working

    classifier = open_classifier(default_bundle, "onnx", "auto")

    assert classifier.device == "CPUExecutionProvider" and not classifier.uses_gpu
    assert classifier.notice == NOTICE
    assert_classifies_the_cat(classifier, photos)


def test_cuda_failing_on_the_model_itself_is_retried_on_the_cpu(
    default_bundle, photos, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_cuda(monkeypatch.setattr, probe_passes=True)

    classifier = open_classifier(default_bundle, "onnx", "auto")

    assert classifier.device == "CPUExecutionProvider"
    assert classifier.notice == NOTICE
    assert_classifies_the_cat(classifier, photos)


def test_cuda_silently_left_out_of_the_session_is_said(
    default_bundle, photos, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_cuda(monkeypatch.setattr, probe_passes=True, silently=True)

    classifier = open_classifier(default_bundle, "onnx", "auto")

    assert classifier.device == "CPUExecutionProvider"
    assert classifier.notice == f"CUDA (ONNX Runtime's CUDA provider) failed ({FELL_BACK}); " + (
        "running on the CPU"
    )
    assert_classifies_the_cat(classifier, photos)


@pytest.mark.parametrize("probe_passes", [False, True])
def test_cuda_asked_for_and_failing_is_an_error(
    default_bundle, monkeypatch: pytest.MonkeyPatch, probe_passes: bool
) -> None:
    break_cuda(monkeypatch.setattr, probe_passes=probe_passes)
    with pytest.raises(BackendError, match=r"^CUDA was asked for but ONNX Runtime cannot use it"):
        open_classifier(default_bundle, "onnx", "cuda")


def test_head_training_embeddings_fall_back_with_the_same_notice(
    default_bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_cuda(monkeypatch.setattr, probe_passes=True)

    embedder = EmbeddingModel(default_bundle, "auto")

    assert embedder.notice == NOTICE and not embedder.uses_gpu
    batch = np.zeros((2, 3, *default_bundle.spec.input_size), np.float32)
    assert embedder(batch).shape == (2, embedder.width)


def test_no_gpu_at_all_gives_no_notice(default_bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    break_cuda(monkeypatch.setattr)
    from cnn_desktop.core.inference import devices

    monkeypatch.setattr(devices, "nvidia_driver_present", lambda: False)  # no NVIDIA driver

    classifier = open_classifier(default_bundle, "onnx", "auto")

    assert classifier.device == "CPUExecutionProvider" and classifier.notice == ""


def test_the_cpu_asked_for_never_probes_cuda(
    default_bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_cuda(monkeypatch.setattr)
    classifier = open_classifier(default_bundle, "onnx", "cpu")
    assert classifier.notice == "" and onnx_provider_status.cache_info().currsize == 0
