"""Why a CNN decides: feature maps on both backends, class-activation maps, colour maps."""

from cnn_desktop.core.explain.cam import CamResult, class_activation_map
from cnn_desktop.core.explain.explainer import METHOD_TITLES, Explainer
from cnn_desktop.core.explain.feature_maps import OnnxFeatureExtractor
from cnn_desktop.core.explain.statistics import LayerStatistics, channel_order, layer_statistics
from cnn_desktop.core.explain.visual import ExplainError, colorize, feature_grid, overlay

__all__ = [
    "METHOD_TITLES",
    "CamResult",
    "ExplainError",
    "Explainer",
    "LayerStatistics",
    "OnnxFeatureExtractor",
    "channel_order",
    "class_activation_map",
    "colorize",
    "feature_grid",
    "layer_statistics",
    "overlay",
]
