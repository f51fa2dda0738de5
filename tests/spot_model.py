"""A hand-built ONNX model that finds red: its evidence lies exactly where the red pixels are.

Class ``red`` scores the red pixels of the network input (a 3×3 stride-2 convolution computing
"red minus the mean of green and blue", ReLU), class ``plain`` the lack of them. With
``pooled=True`` the graph ends global average pool → Gemm, so the classic CAM applies (a
32×32 map); without, Flatten → Gemm, so explanations fall back to occlusion. On a grey
background with a red square pasted somewhere, the strongest evidence must be on the square:
what the explanation tests check the crop → image geometry with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 64
"""Side of the network input."""
RED, GREY = (230, 20, 20), (128, 128, 128)


def write_spot_model(folder: Path, *, pooled: bool = True, name: str = "spots") -> Path:
    """Save the model as ``folder/NAME.cnnmodel`` (ONNX only, no torch weights); its path."""
    from onnx import TensorProto, helper, numpy_helper

    from cnn_desktop.core.models import ModelSpec, save_bundle

    kernel = np.zeros((1, 3, 3, 3), np.float32)
    kernel[0, 0], kernel[0, 1], kernel[0, 2] = 1 / 9, -0.5 / 9, -0.5 / 9
    features = SIDE // 2
    nodes = [
        helper.make_node("Conv", ["input", "kernel"], ["conv"], strides=[2, 2], pads=[1] * 4),
        helper.make_node("Relu", ["conv"], ["redness"]),
    ]
    if pooled:
        weights = np.asarray([[40.0], [-40.0]], np.float32)  # [classes, channels]
        nodes += [
            helper.make_node("GlobalAveragePool", ["redness"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
        ]
    else:
        weights = np.repeat(np.asarray([[40.0], [-40.0]], np.float32), features**2, axis=1)
        weights /= features**2
        nodes.append(helper.make_node("Flatten", ["redness"], ["flat"]))
    nodes += [
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "spots",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])],
        [
            numpy_helper.from_array(kernel, "kernel"),
            numpy_helper.from_array(weights, "fc_w"),
            numpy_helper.from_array(np.asarray([0.0, 1.0], np.float32), "fc_b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    spec = ModelSpec(
        name=name,
        architecture="handmade",
        class_names=("red", "plain"),
        input_size=(SIDE, SIDE),
        interpolation="bilinear",
    )
    return save_bundle(folder / name, spec, model).path


def red_square_image(
    size: tuple[int, int], box: tuple[int, int, int, int], path: Path | None = None
) -> Image.Image:
    """A grey ``width``×``height`` picture with a red square at ``box`` (left, top, right,
    bottom), saved as ``path`` when given (PNG)."""
    image = Image.new("RGB", size, GREY)
    image.paste(RED, box)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    return image
