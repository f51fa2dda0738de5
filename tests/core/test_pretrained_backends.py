"""The embedded default model, its cache, both backends, batched prediction and preprocessing."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_desktop.core.imaging.preprocess import (
    crop_box,
    fit_image,
    load_and_preprocess,
    preprocess_image,
)
from cnn_desktop.core.inference.backends import BackendError, open_classifier
from cnn_desktop.core.inference.devices import onnx_providers
from cnn_desktop.core.inference.predict import classify_paths, top_predictions
from cnn_desktop.core.models import pretrained
from cnn_desktop.core.models.bundle import load_bundle
from cnn_desktop.core.models.pretrained import PretrainedError, map_state_dict_keys
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.tasks import Cancelled, CancelToken

PARITY_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")
CATS = ("tabby", "tiger cat", "Egyptian cat")
REAL_BUILD = pretrained.build_default_bundle


def _cuda_present() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def torch_classifier(default_bundle):
    """The built-in model on PyTorch (CPU)."""
    return open_classifier(default_bundle, "torch", "cpu")


@pytest.fixture(scope="module")
def block_kinds() -> list[bool]:
    """For each flat block of timm's EfficientNet-Lite0: True for an inverted residual."""
    from cnn_desktop.core.models.zoo import build_model

    model = build_model(pretrained.ARCHITECTURE, num_classes=1000)
    return [hasattr(block, "conv_pwl") for stage in model.blocks for block in stage]


class RecordingClassifier:
    """Wraps a classifier and records the batch sizes it is asked to run."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.spec = inner.spec
        self.backend = inner.backend
        self.device = inner.device
        self.uses_gpu = inner.uses_gpu
        self.batch_sizes: list[int] = []

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(batch))
        return self.inner.predict(batch)


# --------------------------------------------------------------------------- weights mapping


def test_state_dict_keys_follow_the_explicit_rule(block_kinds: list[bool]) -> None:
    assert block_kinds[0] is False and block_kinds[1] is True
    keys = [
        "_conv_stem.weight",
        "_bn0.running_mean",
        "_blocks.0._depthwise_conv.weight",
        "_blocks.0._project_conv.weight",
        "_blocks.1._expand_conv.weight",
        "_blocks.1._bn0.weight",
        "_blocks.1._project_conv.weight",
        "_blocks.1._bn2.bias",
        "_blocks.2._depthwise_conv.weight",
        "_blocks.15._project_conv.weight",
        "_conv_head.weight",
        "_bn1.running_var",
        "_fc.weight",
        "_fc.bias",
    ]
    assert map_state_dict_keys(keys, block_kinds) == {
        "_conv_stem.weight": "conv_stem.weight",
        "_bn0.running_mean": "bn1.running_mean",
        "_blocks.0._depthwise_conv.weight": "blocks.0.0.conv_dw.weight",
        "_blocks.0._project_conv.weight": "blocks.0.0.conv_pw.weight",
        "_blocks.1._expand_conv.weight": "blocks.1.0.conv_pw.weight",
        "_blocks.1._bn0.weight": "blocks.1.0.bn1.weight",
        "_blocks.1._project_conv.weight": "blocks.1.0.conv_pwl.weight",
        "_blocks.1._bn2.bias": "blocks.1.0.bn3.bias",
        "_blocks.2._depthwise_conv.weight": "blocks.1.1.conv_dw.weight",
        "_blocks.15._project_conv.weight": "blocks.6.0.conv_pwl.weight",
        "_conv_head.weight": "conv_head.weight",
        "_bn1.running_var": "bn2.running_var",
        "_fc.weight": "classifier.weight",
        "_fc.bias": "classifier.bias",
    }


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("_blocks.0._se_reduce.weight", "unexpected key"),
        ("features.0.weight", "unexpected key"),
        ("_blocks.16._depthwise_conv.weight", "more blocks"),
        ("_blocks.0._expand_conv.weight", "architecture does not"),
    ],
)
def test_unknown_state_dict_key_is_a_pretrained_error(
    block_kinds: list[bool], key: str, fragment: str
) -> None:
    with pytest.raises(PretrainedError, match=fragment):
        map_state_dict_keys(["_conv_stem.weight", key], block_kinds)


def test_pretrained_model_carries_the_embedded_weights() -> None:
    import torch

    model = pretrained.load_pretrained_model()
    source = torch.load(pretrained.weights_file(), map_location="cpu", weights_only=True)
    assert torch.equal(model.classifier.weight, source["_fc.weight"])
    assert torch.equal(model.classifier.bias, source["_fc.bias"])
    assert torch.equal(model.conv_stem.weight, source["_conv_stem.weight"])
    assert torch.equal(
        model.blocks[6][0].conv_pwl.weight, source["_blocks.15._project_conv.weight"]
    )
    assert not model.training


def test_imagenet_class_names() -> None:
    names = pretrained.imagenet_class_names()
    assert len(names) == 1000
    assert len(set(names)) == 1000
    assert names[281] == "tabby"
    assert names[967] == "espresso"
    assert names[0] == "tench"
    assert all(name == name.strip() and name for name in names)


# --------------------------------------------------------------------------- cached bundle


def _count_builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Let ``build_default_bundle`` run for real, recording each call."""
    calls: list[Path] = []

    def counting_build(path: Path):
        calls.append(path)
        return REAL_BUILD(path)

    monkeypatch.setattr(pretrained, "build_default_bundle", counting_build)
    return calls


def _forbid_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: Path):
        raise AssertionError(f"the default model was rebuilt at {path}")

    monkeypatch.setattr(pretrained, "build_default_bundle", fail)


def _seed_cache(tmp_path: Path, default_bundle, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the cache at tmp_path and put a good copy of the default bundle there."""
    monkeypatch.setenv("CNN_DESKTOP_CACHE_DIR", str(tmp_path))
    target = pretrained.cached_bundle_path()
    target.parent.mkdir(parents=True)
    shutil.copytree(default_bundle.path, target)
    return target


def _assert_usable_default(path: Path) -> None:
    bundle = load_bundle(path)
    assert bundle.spec.num_classes == 1000
    assert bundle.spec.provenance["source_version"] == pretrained.source_version()
    assert bundle.weights_path is not None
    classifier = open_classifier(bundle, "onnx", "cpu")
    probabilities = classifier.predict(np.zeros((1, 3, 224, 224), np.float32))
    assert probabilities.shape == (1, 1000)
    assert abs(float(probabilities.sum()) - 1.0) < 1e-4
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_default_bundle_is_built_once_then_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNN_DESKTOP_CACHE_DIR", str(tmp_path))
    calls = _count_builds(monkeypatch)
    messages: list[str] = []

    first = pretrained.default_model_bundle(lambda f, m: messages.append(m))
    assert calls == [pretrained.cached_bundle_path()]
    assert first.path == pretrained.cached_bundle_path()
    assert first.path.is_relative_to(tmp_path)
    assert messages and "first run" in messages[0]
    _assert_usable_default(first.path)

    _forbid_builds(monkeypatch)
    second = pretrained.default_model_bundle()
    assert second.path == first.path
    assert second.spec == first.spec


def test_corrupt_cached_bundle_is_rebuilt(
    tmp_path: Path, default_bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = _seed_cache(tmp_path, default_bundle, monkeypatch)
    _forbid_builds(monkeypatch)
    assert pretrained.default_model_bundle().path == cached  # a good copy is used as is

    garbage = b"this is not an onnx model" * 100
    (cached / "model.onnx").write_bytes(garbage)
    calls = _count_builds(monkeypatch)
    rebuilt = pretrained.default_model_bundle()
    assert calls == [cached]
    assert rebuilt.path == cached
    assert (cached / "model.onnx").read_bytes() != garbage
    _assert_usable_default(cached)


def test_stale_cached_bundle_is_rebuilt(
    tmp_path: Path, default_bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = _seed_cache(tmp_path, default_bundle, monkeypatch)
    spec_file = cached / "model.json"
    data = json.loads(spec_file.read_text(encoding="utf-8"))
    data["provenance"]["source_version"] = "0.0.0-old"
    spec_file.write_text(json.dumps(data), encoding="utf-8")
    assert load_bundle(cached).spec.provenance["source_version"] == "0.0.0-old"

    calls = _count_builds(monkeypatch)
    rebuilt = pretrained.default_model_bundle()
    assert calls == [cached]
    assert rebuilt.spec.provenance["source_version"] == pretrained.source_version()
    _assert_usable_default(cached)


# --------------------------------------------------------------------------- real photos


def _top_labels(results, k: int) -> list[tuple[str, ...]]:
    return [tuple(p.label for p in r.predictions[:k]) for r in results]


def test_real_photos_are_recognised(photos: dict[str, Path], onnx_classifier) -> None:
    paths = [photos["chelsea"], photos["coffee"], photos["rocket"], photos["coffee_jpg"]]
    results = list(classify_paths(paths, onnx_classifier, top_k=5))
    assert all(r.ok for r in results), [r.error for r in results]
    chelsea, coffee, rocket, coffee_jpg = _top_labels(results, 5)
    assert chelsea[0] in CATS, chelsea
    assert coffee[0] in ("espresso", "cup"), coffee
    assert {"missile", "projectile"} & set(rocket[:3]), rocket
    assert coffee_jpg[0] in ("espresso", "cup"), coffee_jpg
    for result in results:
        confidences = [p.confidence for p in result.predictions]
        assert confidences == sorted(confidences, reverse=True)
        assert 0.0 < confidences[0] <= 1.0


def test_top_predictions_are_the_k_best_in_order() -> None:
    probabilities = np.array([0.1, 0.5, 0.05, 0.3, 0.05], np.float32)
    names = ("a", "b", "c", "d", "e")
    top = top_predictions(probabilities, names, 3)
    assert [(p.label, p.index) for p in top] == [("b", 1), ("d", 3), ("a", 0)]
    assert top[0].confidence == pytest.approx(0.5)
    assert len(top_predictions(probabilities, names, 50)) == 5
    assert len(top_predictions(probabilities, names, 0)) == 1


# --------------------------------------------------------------------------- backend parity


def test_onnx_and_torch_backends_agree(
    photos: dict[str, Path], onnx_classifier, torch_classifier
) -> None:
    assert onnx_classifier.backend == "onnx" and torch_classifier.backend == "torch"
    assert onnx_classifier.device == "CPUExecutionProvider"
    assert torch_classifier.device == "cpu"
    batch = np.stack([load_and_preprocess(photos[n], onnx_classifier.spec) for n in PARITY_PHOTOS])
    from_onnx = onnx_classifier.predict(batch)
    from_torch = torch_classifier.predict(batch)
    assert from_onnx.shape == from_torch.shape == (4, 1000)
    assert np.abs(from_onnx - from_torch).max() <= 1e-4
    np.testing.assert_array_equal(from_onnx.argmax(1), from_torch.argmax(1))

    paths = [photos[n] for n in PARITY_PHOTOS]
    via_onnx = list(classify_paths(paths, onnx_classifier, top_k=1000))
    via_torch = list(classify_paths(paths, torch_classifier, top_k=1000))
    for a, b in zip(via_onnx, via_torch, strict=True):
        assert a.predictions[0].label == b.predictions[0].label
        by_index_a = np.zeros(1000)
        by_index_b = np.zeros(1000)
        for p in a.predictions:
            by_index_a[p.index] = p.confidence
        for p in b.predictions:
            by_index_b[p.index] = p.confidence
        assert np.abs(by_index_a - by_index_b).max() <= 1e-4
        # classify_paths gives exactly what the preprocessed batch gave
        row = paths.index(a.path)
        assert by_index_a == pytest.approx(from_onnx[row], abs=1e-6)


# --------------------------------------------------------------------------- classify_paths


def test_classify_paths_keeps_order_and_reports_bad_files(
    tmp_path: Path, photos: dict[str, Path], onnx_classifier
) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"definitely not a jpeg" * 10)
    missing = tmp_path / "missing.png"
    paths = [
        photos["chelsea"],
        missing,
        photos["coffee"],
        corrupt,
        photos["rocket"],
        photos["astronaut"],
        photos["coffee_jpg"],
    ]
    results = list(classify_paths(paths, onnx_classifier, top_k=3, batch_size=4))
    assert [r.path for r in results] == paths
    assert [r.ok for r in results] == [True, False, True, False, True, True, True]
    assert results[1].error == "file not found"
    assert "not an image" in results[3].error
    assert results[1].predictions == () and results[3].predictions == ()
    assert results[0].predictions[0].label in CATS
    assert results[2].predictions[0].label in ("espresso", "cup")
    assert all(len(r.predictions) == 3 for r in results if r.ok)
    assert results[1].to_dict() == {"path": str(missing), "error": "file not found"}


def test_classify_paths_survives_the_bad_input_corpus(
    tmp_path: Path, photos: dict[str, Path], onnx_classifier
) -> None:
    bad_inputs = pytest.importorskip("tests.bad_inputs")
    corpus = bad_inputs.write_bad_input_corpus(tmp_path / "corpus")
    paths = [photos["chelsea"]]
    paths += [tmp_path / "corpus" / item.name for item in corpus]
    paths.append(photos["coffee"])
    results = list(classify_paths(paths, onnx_classifier, batch_size=5))
    assert [r.path for r in results] == paths
    for item, result in zip(corpus, results[1:-1], strict=True):
        assert result.ok == item.loads, (item.name, result.error)
        if not item.loads and item.error_contains:
            assert item.error_contains in result.error.lower(), (item.name, result.error)
    assert results[0].predictions[0].label in CATS
    assert results[-1].predictions[0].label in ("espresso", "cup")


def test_batch_size_does_not_change_predictions(
    tmp_path: Path, photos: dict[str, Path], onnx_classifier
) -> None:
    missing = tmp_path / "gone.jpg"
    paths = [
        photos["chelsea"],
        photos["coffee"],
        missing,
        photos["rocket"],
        photos["astronaut"],
        photos["coffee_jpg"],
        photos["chelsea"],
        photos["rocket"],
        photos["coffee"],
    ]
    outcomes = {}
    for batch_size in (32, 7, 1):
        recorder = RecordingClassifier(onnx_classifier)
        results = list(classify_paths(paths, recorder, top_k=5, batch_size=batch_size))
        assert [r.path for r in results] == paths
        assert max(recorder.batch_sizes) <= batch_size
        assert sum(recorder.batch_sizes) == len(paths) - 1
        outcomes[batch_size] = results

    reference = outcomes[32]
    for batch_size in (7, 1):
        for ref, other in zip(reference, outcomes[batch_size], strict=True):
            assert ref.error == other.error
            assert [p.index for p in ref.predictions] == [p.index for p in other.predictions]
            for a, b in zip(ref.predictions, other.predictions, strict=True):
                assert a.confidence == pytest.approx(b.confidence, abs=1e-5)


def test_cancel_after_the_first_batch_stops_classification(
    photos: dict[str, Path], onnx_classifier
) -> None:
    token = CancelToken()
    reports: list[tuple[float, str]] = []

    def progress(fraction: float, message: str) -> None:
        reports.append((fraction, message))
        token.cancel()

    recorder = RecordingClassifier(onnx_classifier)
    paths = [photos[n] for n in PARITY_PHOTOS] * 4
    results = []
    with pytest.raises(Cancelled):
        for result in classify_paths(
            paths, recorder, batch_size=2, workers=2, progress=progress, cancel=token
        ):
            results.append(result)
    assert [r.path for r in results] == paths[:2]
    assert all(r.ok for r in results)
    # Batches already in flight (at most workers + 1) may finish; no new one starts.
    assert len(recorder.batch_sizes) <= 3 < len(paths) // 2
    assert reports == [(2 / 16, "2/16 images")]


def test_progress_reaches_one_without_cancel(photos: dict[str, Path], onnx_classifier) -> None:
    reports: list[float] = []
    paths = [photos["chelsea"], photos["coffee"], photos["rocket"]]
    results = list(
        classify_paths(
            paths,
            onnx_classifier,
            batch_size=2,
            progress=lambda f, m: reports.append(f),
            cancel=CancelToken(),
        )
    )
    assert len(results) == 3
    assert reports == sorted(reports)
    assert reports[-1] == pytest.approx(1.0)


def test_thumbnails_fit_the_requested_size(photos: dict[str, Path], onnx_classifier) -> None:
    paths = [photos["chelsea"], photos["rocket"], photos["coffee_jpg"]]
    results = list(classify_paths(paths, onnx_classifier, thumbnail_size=64))
    for path, result in zip(paths, results, strict=True):
        assert result.thumbnail is not None
        assert max(result.thumbnail.size) == 64
        with Image.open(path) as original:
            ratio = original.width / original.height
        assert result.thumbnail.width / result.thumbnail.height == pytest.approx(ratio, rel=0.05)
    plain = list(classify_paths(paths[:1], onnx_classifier))
    assert plain[0].thumbnail is None


# --------------------------------------------------------------------------- devices


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process sees no working GPU, as on a machine without one (also where one is)."""
    import torch

    from cnn_desktop.core.inference.backends import onnx as onnx_backend
    from cnn_desktop.core.inference.devices import ProviderStatus, onnx_provider_status

    def provider_status(name: str) -> ProviderStatus:
        if name == "CUDAExecutionProvider":
            return ProviderStatus(name, False, "no NVIDIA driver on this machine")
        return onnx_provider_status(name)

    monkeypatch.setattr(onnx_backend, "onnx_provider_status", provider_status)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        ("onnx", "CUDA was asked for but ONNX Runtime cannot use it: no NVIDIA driver"),
        ("torch", "CUDA was asked for but PyTorch sees no CUDA device"),
    ],
)
def test_asking_for_cuda_without_a_gpu_is_a_clear_error(
    default_bundle, no_gpu, backend: str, reason: str
) -> None:
    with pytest.raises(BackendError, match=f"^{reason}"):
        open_classifier(default_bundle, backend, "cuda")


def test_unknown_backend_or_device_is_a_backend_error(default_bundle) -> None:
    with pytest.raises(BackendError, match=r"unknown backend 'tensorflow'.*onnx, torch"):
        open_classifier(default_bundle, "tensorflow", "cpu")
    with pytest.raises(BackendError, match=r"unknown device 'tpu'.*auto, cpu, cuda"):
        open_classifier(default_bundle, "onnx", "tpu")


def test_cpu_provider_is_listed_as_working() -> None:
    statuses = {status.name: status for status in onnx_providers()}
    assert statuses["CPUExecutionProvider"].working
    if "CUDAExecutionProvider" in statuses:  # the GPU build: it works exactly when torch's does
        cuda = statuses["CUDAExecutionProvider"]
        assert cuda.working == _cuda_present(), cuda
        assert cuda.detail


@pytest.mark.parametrize(
    ("backend", "device"), [("onnx", "CPUExecutionProvider"), ("torch", "cpu")]
)
def test_auto_device_falls_back_to_the_cpu_without_a_gpu(
    default_bundle, no_gpu, photos, backend: str, device: str
) -> None:
    classifier = open_classifier(default_bundle, backend, "auto")
    assert classifier.device == device
    batch = np.stack([load_and_preprocess(photos["chelsea"], default_bundle.spec)])
    assert (
        top_predictions(classifier.predict(batch)[0], default_bundle.spec.class_names, 1)[0].label
        in CATS
    )


@pytest.mark.skipif(not _cuda_present(), reason="needs a CUDA device")
@pytest.mark.parametrize("backend", ["onnx", "torch"])
@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_cuda_is_used_when_present_and_agrees_with_the_cpu(
    default_bundle, photos, backend: str, device: str
) -> None:
    gpu = open_classifier(default_bundle, backend, device)
    assert "cuda" in gpu.device.lower(), gpu.device
    cpu = open_classifier(default_bundle, backend, "cpu")
    batch = np.stack([load_and_preprocess(photos[n], default_bundle.spec) for n in PARITY_PHOTOS])
    on_gpu, on_cpu = gpu.predict(batch), cpu.predict(batch)
    np.testing.assert_array_equal(on_gpu.argmax(1), on_cpu.argmax(1))
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-3)


# --------------------------------------------------------------------------- preprocessing


def _spec(**changes: object) -> ModelSpec:
    base = ModelSpec(
        name="p", architecture="unknown", class_names=("a", "b"), input_size=(224, 224)
    )
    return dataclasses.replace(base, **changes)


def test_crop_box_is_centred_with_the_input_aspect() -> None:
    left, top, right, bottom = crop_box(400, 300, pretrained.default_spec())
    assert ((left + right) / 2, (top + bottom) / 2) == pytest.approx((200, 150))
    assert right - left == pytest.approx(bottom - top)
    assert bottom - top == pytest.approx(300 * 0.875)

    left, top, right, bottom = crop_box(400, 300, _spec(input_size=(224, 256)))
    assert ((left + right) / 2, (top + bottom) / 2) == pytest.approx((200, 150))
    assert (right - left) / (bottom - top) == pytest.approx(256 / 224)
    assert left >= 0 and top >= 0 and right <= 400 and bottom <= 300


def test_stretch_uses_the_whole_image() -> None:
    spec = _spec(resize_mode="stretch", input_size=(32, 48))
    assert crop_box(400, 300, spec) == (0.0, 0.0, 400.0, 300.0)
    image = Image.new("RGB", (400, 300), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 300))  # a blue band at the very left edge
    fitted = fit_image(image, spec)
    assert fitted.size == (48, 32)
    assert fitted.getpixel((0, 16))[2] > 200  # the edge band is kept, not cropped away

    # A square centre crop of the same image loses the band.
    cropped = fit_image(image, _spec(input_size=(32, 32)))
    assert cropped.size == (32, 32)
    assert cropped.getpixel((0, 16))[2] < 50


def test_one_channel_spec_gives_one_channel_arrays(photos: dict[str, Path]) -> None:
    spec = _spec(channels=1, mean=(0.5,), std=(0.5,), input_size=(28, 28))
    white = preprocess_image(Image.new("RGB", (50, 40), (255, 255, 255)), spec)
    assert white.shape == (1, 28, 28)
    assert white.dtype == np.float32
    np.testing.assert_allclose(white, 1.0, atol=1e-6)
    black = preprocess_image(Image.new("RGB", (50, 40), (0, 0, 0)), spec)
    np.testing.assert_allclose(black, -1.0, atol=1e-6)

    photo = load_and_preprocess(photos["chelsea"], spec)
    assert photo.shape == (1, 28, 28)
    assert -1.0 <= photo.min() < photo.max() <= 1.0


def test_default_preprocessing_normalises_rgb(photos: dict[str, Path]) -> None:
    spec = pretrained.default_spec()
    tensor = load_and_preprocess(photos["coffee_jpg"], spec)
    assert tensor.shape == (3, 224, 224)
    assert tensor.dtype == np.float32
    assert -1.0 <= tensor.min() < tensor.max() <= 1.0
    red = preprocess_image(Image.new("RGB", (300, 200), (255, 0, 0)), spec)
    np.testing.assert_allclose(red[0], 1.0, atol=1e-6)
    np.testing.assert_allclose(red[1:], -1.0, atol=1e-6)
