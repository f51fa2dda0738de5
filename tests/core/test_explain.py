"""Explaining the CNN: layer summary, feature maps, statistics, colours, kernels and CAMs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from cnn_desktop.core.explain.cam import (
    CLASSIC_CAM,
    GRAD_CAM,
    OCCLUSION,
    class_activation_map,
    grad_cam,
)
from cnn_desktop.core.explain.feature_maps import (
    ExplainError,
    OnnxFeatureExtractor,
    onnx_model_summary,
)
from cnn_desktop.core.explain.statistics import channel_order, layer_statistics
from cnn_desktop.core.explain.visual import colorize, colormap_lut, feature_grid, overlay
from cnn_desktop.core.imaging.preprocess import load_and_preprocess, preprocess_image

CATS = ("tabby", "tiger cat", "Egyptian cat")
MIDDLE_CONV = "blocks.3.0.conv_pw (Conv)"


@pytest.fixture(scope="module")
def extractor(default_bundle):
    return OnnxFeatureExtractor(default_bundle, device="cpu")


@pytest.fixture(scope="module")
def torch_extractor(default_bundle):
    from cnn_desktop.core.explain.feature_maps_torch import TorchFeatureExtractor

    return TorchFeatureExtractor(default_bundle)


@pytest.fixture(scope="module")
def chelsea(photos, default_bundle):
    return load_and_preprocess(photos["chelsea"], default_bundle.spec)


@pytest.fixture(scope="module")
def coffee(photos, default_bundle):
    return load_and_preprocess(photos["coffee"], default_bundle.spec)


def _count_torch_convs(model) -> int:
    from torch import nn

    return sum(isinstance(m, nn.Conv2d) for m in model.modules())


def test_summary_lists_every_convolution_with_shapes_and_weights(
    default_bundle, extractor, torch_extractor
):
    from safetensors.numpy import load_file

    summary = onnx_model_summary(default_bundle)
    by_name = {layer.name: layer for layer in summary}
    assert len(by_name) == len(summary), "layer names must be unique"
    convs = [layer.name for layer in summary if layer.is_conv]
    assert len(convs) == _count_torch_convs(torch_extractor.model) == 49
    assert convs == extractor.conv_layers()
    assert by_name["conv_stem (Conv)"].output_shape[1:] == (32, 112, 112)
    assert by_name["conv_head (Conv)"].output_shape[1:] == (1280, 7, 7)
    assert by_name["classifier (Gemm)"].parameters == 1280 * 1000 + 1000
    assert summary[-1].kind == "Softmax" and summary[-1].output_shape == (None, 1000)
    assert not any(layer.kind in ("Constant", "Shape") for layer in summary)
    # BatchNorm is folded into the convolutions: the graph keeps each convolution's weight
    # and gains a bias the size of the BatchNorm shift; scale and running statistics vanish.
    weights = load_file(str(default_bundle.weights_path))
    kept = sum(
        v.size
        for k, v in weights.items()
        if k.endswith(".bias") or (k.endswith(".weight") and v.ndim > 1)
    )
    assert sum(layer.parameters for layer in summary) == kept


def test_torch_summary_names_convolutions_like_onnx(torch_extractor, extractor):
    from cnn_desktop.core.explain.feature_maps_torch import torch_model_summary

    model = torch_extractor.model
    summary = torch_model_summary(model, (3, 224, 224))
    convs = [layer for layer in summary if layer.is_conv]
    assert [layer.name for layer in convs] == extractor.conv_layers()
    assert convs[0].output_shape == (None, 32, 112, 112)
    assert sum(layer.parameters for layer in summary) == sum(p.numel() for p in model.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_feature_maps_show_the_image(extractor, chelsea, default_bundle):
    maps = extractor.feature_maps(chelsea, "blocks.1.0.conv_pw (Conv)")
    assert maps.shape == (96, 112, 112)
    assert maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 6  # after ReLU6
    assert (maps.reshape(96, -1).std(axis=1) > 0).sum() > 48  # most channels respond
    together, probs = extractor.features_and_probabilities(
        chelsea, ["blocks.1.0.conv_pw (Conv)", "conv_head (Conv)"]
    )
    np.testing.assert_allclose(together["blocks.1.0.conv_pw (Conv)"], maps, atol=1e-5)
    assert together["conv_head (Conv)"].shape == (1280, 7, 7)
    assert default_bundle.spec.class_names[int(probs.argmax())] in CATS
    np.testing.assert_allclose(extractor.probabilities(chelsea), probs, atol=1e-5)
    with pytest.raises(ExplainError, match="no convolution named"):
        extractor.feature_maps(chelsea, "classifier (Gemm)")


def test_layer_statistics_are_consistent(extractor, chelsea):
    relu6 = extractor.feature_maps(chelsea, "blocks.1.0.conv_pw (Conv)")
    stats = layer_statistics(relu6, bins=40)
    assert 0 < stats.zero_fraction < 1
    assert stats.min == 0 and stats.max <= 6
    assert stats.histogram_counts.sum() == relu6.size
    assert len(stats.histogram_edges) == 41
    assert stats.mean == pytest.approx(float(relu6.mean()), rel=1e-4)
    assert stats.channel_means.shape == (96,)
    order = channel_order(relu6)
    assert sorted(order.tolist()) == list(range(96))
    assert np.all(np.diff(stats.channel_means[order]) <= 0)
    by_max = channel_order(relu6, by="max")
    assert np.all(np.diff(relu6.reshape(96, -1).max(axis=1)[by_max]) <= 0)
    linear = extractor.feature_maps(chelsea, "blocks.1.0.conv_pwl (Conv)")  # no activation
    assert layer_statistics(linear).min < 0 < layer_statistics(linear).max
    with pytest.raises(ExplainError):
        channel_order(relu6, by="median")


def test_colorize_uses_the_colormap_ends():
    ramp = np.linspace(-3.0, 5.0, 256, dtype=np.float32).reshape(16, 16)
    for name, low, high in (
        ("inferno", (0, 0, 4), (252, 255, 164)),
        ("viridis", (68, 1, 84), (253, 231, 37)),
        ("gray", (0, 0, 0), (255, 255, 255)),
    ):
        rgb = colorize(ramp, name)
        assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
        assert tuple(rgb[0, 0]) == low and tuple(rgb[-1, -1]) == high
    lut = colormap_lut("inferno")
    brightness = lut.astype(int).sum(axis=1)
    assert brightness[-1] > brightness[128] > brightness[0]  # perceptually ordered
    jet = colorize(np.array([[0.0, 0.5, 1.0]]), "jet", 0.0, 1.0)[0]
    assert jet[0, 2] > 100 and jet[1, 1] > 200 and jet[2, 0] > 100  # blue, green, red
    assert colorize(np.full((4, 4), 7.0)).shape == (4, 4, 3)  # a flat map does not divide by 0
    with pytest.raises(ExplainError, match="unknown colormap"):
        colorize(ramp, "rainbow-unicorn")


def test_feature_grid_tiles_channels(extractor, chelsea):
    maps = extractor.feature_maps(chelsea, "blocks.1.0.conv_pw (Conv)")
    grid = feature_grid(maps, columns=12, pad=1)
    assert grid.shape == (8 * 112 + 7, 12 * 112 + 11, 3) and grid.dtype == np.uint8
    strongest = feature_grid(maps, order=channel_order(maps)[:16], pad=2)
    assert strongest.shape == (4 * 112 + 6, 4 * 112 + 6, 3)
    tile = strongest[:112, :112].astype(int).sum(axis=2)
    assert tile.max() - tile.min() > 300  # each channel spans its own colour range


def test_overlay_colours_the_hot_region():
    image = Image.new("RGB", (300, 200), (128, 128, 128))
    heat = np.zeros((7, 7), np.float32)
    heat[0, 0] = 1.0
    blended = np.asarray(overlay(image, heat, opacity=0.6))
    assert blended.shape == (200, 300, 3)
    assert blended[5, 5, 0] > blended[5, 5, 2]  # hot: red
    assert blended[-5, -5, 2] > blended[-5, -5, 0]  # cold: blue
    unchanged = np.asarray(overlay(image, heat, opacity=0.0))
    assert np.array_equal(unchanged, np.asarray(image))


def test_first_layer_kernels_as_rgb_tiles(extractor, torch_extractor):
    tiles = extractor.kernels_rgb()
    assert tiles.shape == (32, 3, 3, 3) and tiles.dtype == np.uint8
    flat = tiles.reshape(32, -1)
    assert np.all((flat.max(axis=1) == 255) | (flat.min(axis=1) == 0))  # each scaled alone
    assert extractor.kernels_rgb(max_kernels=8).shape == (8, 3, 3, 3)
    torch_tiles = torch_extractor.kernels_rgb().astype(int)
    assert np.abs(torch_tiles - tiles.astype(int)).max() <= 1  # BatchNorm folded on both sides


def _centre_vs_corners(heat: np.ndarray) -> tuple[float, float]:
    corners = np.concatenate([heat[:2, :2], heat[:2, -2:], heat[-2:, :2], heat[-2:, -2:]])
    return float(heat[1:6, 1:6].mean()), float(corners.mean())


def test_cam_explains_the_cat_photo(extractor, chelsea, default_bundle):
    top = int(extractor.probabilities(chelsea).argmax())
    result = class_activation_map(extractor, chelsea, top)
    assert result.method == CLASSIC_CAM and result.layer == "bn2.act (Clip)"
    assert default_bundle.spec.class_names[result.class_index] in CATS
    assert result.heatmap.shape == (7, 7) and result.heatmap.dtype == np.float32
    assert result.heatmap.max() == 1 and result.heatmap.min() >= 0


@pytest.mark.parametrize("corner", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cam_follows_the_cat_around_the_picture(extractor, photos, default_bundle, corner):
    # The cat photo fills the whole crop, so put it in one quarter of a plain grey picture.
    canvas = Image.new("RGB", (448, 448), (128, 128, 128))
    with Image.open(photos["chelsea"]) as cat:
        canvas.paste(cat.convert("RGB").resize((224, 224)), (corner[0] * 224, corner[1] * 224))
    tensor = preprocess_image(canvas, default_bundle.spec)
    top = int(extractor.probabilities(tensor).argmax())
    assert default_bundle.spec.class_names[top] in CATS
    heat = class_activation_map(extractor, tensor, top).heatmap
    rows = slice(0, 4) if corner[1] == 0 else slice(3, 7)  # the cat's half-plus-a-cell
    cols = slice(0, 4) if corner[0] == 0 else slice(3, 7)
    assert heat[rows, cols].sum() > 0.7 * heat.sum()
    row, col = np.unravel_index(int(heat.argmax()), heat.shape)
    assert row in range(7)[rows] and col in range(7)[cols]


def test_cam_for_espresso_is_on_the_cup(extractor, coffee, default_bundle):
    espresso = default_bundle.spec.class_names.index("espresso")
    result = class_activation_map(extractor, coffee, espresso)
    assert result.method == CLASSIC_CAM and result.probability > 0.5
    row, col = np.unravel_index(int(result.heatmap.argmax()), result.heatmap.shape)
    assert 1 <= row <= 4 and 1 <= col <= 5  # the cup: centre, upper half of the crop
    centre, corners = _centre_vs_corners(result.heatmap)
    assert centre > 3 * corners
    with pytest.raises(ExplainError, match="outside"):
        class_activation_map(extractor, coffee, 1000)


def _tiny_model():
    """No global pool: class 0 counts bright pixels in the top-left quarter of a 32×32 image."""
    import torch
    from torch import nn

    model = nn.Sequential(
        nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(3, 4, 3)),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 32 * 32, 2),
    )
    with torch.no_grad():
        conv = model[0][1]
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0, :, 1, 1] = 1 / 3
        weight = torch.zeros(2, 4, 32, 32)
        weight[0, 0, :16, :16] = 0.02
        model[3].weight.copy_(weight.reshape(2, -1))
        model[3].bias.zero_()
    return model.eval()


def test_occlusion_is_used_without_a_global_pool(tmp_path):
    from cnn_desktop.core.explain.feature_maps_torch import TorchFeatureExtractor
    from cnn_desktop.core.models.bundle import save_bundle
    from cnn_desktop.core.models.export import export_onnx
    from cnn_desktop.core.models.spec import ModelSpec

    model = _tiny_model()
    spec = ModelSpec(name="tiny", architecture="tiny", class_names=("bright", "other"),
                     input_size=(32, 32), resize_mode="stretch")  # fmt: skip
    proto, spec = export_onnx(model, spec, [])
    bundle = save_bundle(tmp_path / "tiny", spec, proto)
    image = -np.ones((3, 32, 32), np.float32)  # black, with a white square top-left
    image[:, 2:12, 2:12] = 1.0
    tiny = OnnxFeatureExtractor(bundle, device="cpu")
    assert tiny.conv_layers() == ["0 (Conv)"] == TorchFeatureExtractor(model, spec).conv_layers()
    result = class_activation_map(tiny, image, 0)
    assert result.method == OCCLUSION and result.heatmap.shape == (7, 7)
    assert result.probability > 0.8
    row, col = np.unravel_index(int(result.heatmap.argmax()), (7, 7))
    assert row <= 2 and col <= 2
    assert result.heatmap[3:, :].max() == 0 and result.heatmap[:, 3:].max() == 0
    np.testing.assert_allclose(  # same activation on both backends
        tiny.feature_maps(image, "0 (Conv)"),
        TorchFeatureExtractor(model, spec).feature_maps(image, "0 (Conv)"),
        atol=1e-5,
    )


def test_grad_cam_agrees_with_cam_and_leaves_the_model_as_it_was(
    torch_extractor, extractor, chelsea
):
    model = torch_extractor.model
    top = int(extractor.probabilities(chelsea).argmax())
    flags = [p.requires_grad for p in model.parameters()]
    model.train()
    try:
        result = grad_cam(model, chelsea, top)
        assert model.training
    finally:
        model.eval()
    assert result.method == GRAD_CAM and result.layer == "bn2"
    assert result.heatmap.shape == (7, 7) and result.heatmap.max() == 1
    cam = class_activation_map(extractor, chelsea, top).heatmap
    assert np.corrcoef(result.heatmap.ravel(), cam.ravel())[0, 1] > 0.5
    assert result.probability == pytest.approx(float(extractor.probabilities(chelsea)[top]), 1e-3)
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks
        assert not module._forward_pre_hooks
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    by_name = grad_cam(model, chelsea, top, layer="conv_head (Conv)")
    np.testing.assert_allclose(by_name.heatmap, result.heatmap, atol=1e-5)
    assert grad_cam(model, chelsea, top, layer="blocks.4").heatmap.shape == (14, 14)
    with pytest.raises(ExplainError):
        grad_cam(model, chelsea, top, layer="no.such.layer")
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize(
    "layer", ["conv_stem (Conv)", MIDDLE_CONV, "blocks.5.1.conv_pwl (Conv)", "conv_head (Conv)"]
)
def test_onnx_and_torch_feature_maps_agree(extractor, torch_extractor, chelsea, layer):
    onnx_maps = extractor.feature_maps(chelsea, layer)
    torch_maps = torch_extractor.feature_maps(chelsea, layer)
    assert onnx_maps.shape == torch_maps.shape
    scale = float(np.abs(onnx_maps).max())
    assert scale > 0
    assert float(np.abs(onnx_maps - torch_maps).max()) <= 1e-3 * scale


def test_torch_extractor_lists_the_same_convolutions(extractor, torch_extractor):
    assert torch_extractor.conv_layers() == extractor.conv_layers()


def test_extractor_serves_two_threads_at_once(default_bundle, chelsea, coffee):
    fresh = OnnxFeatureExtractor(default_bundle, device="cpu", threads=1)  # session made lazily
    jobs = [(chelsea, MIDDLE_CONV), (coffee, "conv_head (Conv)")]
    results: dict[int, list[np.ndarray]] = {0: [], 1: []}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(slot: int) -> None:
        try:
            barrier.wait()
            for _ in range(3):
                results[slot].append(fresh.feature_maps(*jobs[slot]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    for slot, (tensor, layer) in enumerate(jobs):
        expected = fresh.feature_maps(tensor, layer)
        assert len(results[slot]) == 3
        for maps in results[slot]:
            np.testing.assert_allclose(maps, expected, atol=1e-5)


@pytest.mark.parametrize("head", ["gemm_transposed", "gemm_plain", "matmul_add"])
def test_classic_cam_reads_the_classifier_weights_in_every_layout(tmp_path, head):
    from onnx import TensorProto, helper, numpy_helper

    from cnn_desktop.core.models.bundle import save_bundle
    from cnn_desktop.core.models.spec import ModelSpec

    rng = np.random.default_rng(7)
    weights = rng.normal(size=(4, 3)).astype(np.float32)  # [classes, channels]
    bias = np.zeros(4, np.float32)
    nodes = [
        helper.make_node("Relu", ["input"], ["features"]),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
    ]
    if head == "matmul_add":
        stored = weights.T
        nodes += [
            helper.make_node("MatMul", ["flat", "fc_w"], ["scores"]),
            helper.make_node("Add", ["scores", "fc_b"], ["logits"]),
        ]
    else:
        transposed = head == "gemm_transposed"
        stored = weights if transposed else weights.T
        nodes.append(
            helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=int(transposed))
        )
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
    graph = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(stored, "fc_w"), numpy_helper.from_array(bias, "fc_b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    spec = ModelSpec(name="head", architecture="handmade", class_names=tuple("abcd"),
                     input_size=(8, 8))  # fmt: skip
    extractor = OnnxFeatureExtractor(save_bundle(tmp_path / head, spec, model), device="cpu")
    image = rng.normal(size=(3, 8, 8)).astype(np.float32)
    result = class_activation_map(extractor, image, 2)
    assert result.method == CLASSIC_CAM
    expected = np.tensordot(weights[2], np.maximum(image, 0), axes=1)
    expected = np.maximum(expected, 0) / np.maximum(expected, 0).max()
    np.testing.assert_allclose(result.heatmap, expected, atol=1e-5)
