"""Why a CNN decides: feature maps on both backends, class-activation maps, colour maps,
explanations written as files (per image and averaged per class), mean maps per class in memory."""

from cnn_desktop.core.explain.averaging import MeanMap
from cnn_desktop.core.explain.cam import CamResult, class_activation_map
from cnn_desktop.core.explain.class_maps import ClassMap, class_mean_maps
from cnn_desktop.core.explain.explainer import METHOD_TITLES, METHODS, Explainer
from cnn_desktop.core.explain.feature_maps import OnnxFeatureExtractor
from cnn_desktop.core.explain.geometry import map_to_input, peak_in_input, resample_into_box
from cnn_desktop.core.explain.statistics import LayerStatistics, channel_order, layer_statistics
from cnn_desktop.core.explain.to_files import (
    ExplainedClass,
    ExplainedImage,
    class_index_for,
    explain_class,
    explain_image,
)
from cnn_desktop.core.explain.visual import ExplainError, colorize, feature_grid, overlay
from cnn_desktop.core.explain.writer import ExplanationWriter

__all__ = [
    "METHODS",
    "METHOD_TITLES",
    "CamResult",
    "ClassMap",
    "ExplainError",
    "ExplainedClass",
    "ExplainedImage",
    "Explainer",
    "ExplanationWriter",
    "LayerStatistics",
    "MeanMap",
    "OnnxFeatureExtractor",
    "channel_order",
    "class_activation_map",
    "class_index_for",
    "class_mean_maps",
    "colorize",
    "explain_class",
    "explain_image",
    "feature_grid",
    "layer_statistics",
    "map_to_input",
    "overlay",
    "peak_in_input",
    "resample_into_box",
]
