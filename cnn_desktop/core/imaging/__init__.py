"""Reading user images safely and turning them into model input."""

from cnn_desktop.core.imaging.decode_warnings import decode_warnings
from cnn_desktop.core.imaging.files import prune_folder
from cnn_desktop.core.imaging.formats import (
    EXTENSIONS_BY_FORMAT,
    REFUSED_FORMATS,
    skip_reason,
    summarize_skipped,
)
from cnn_desktop.core.imaging.loading import IMAGE_EXTENSIONS, ImageLoadError, load_image
from cnn_desktop.core.imaging.pixels import BIT_DEPTH_POLICIES, BIT_DEPTH_POLICY
from cnn_desktop.core.imaging.preprocess import load_and_preprocess
from cnn_desktop.core.imaging.walk import ImageListing, WalkEntry, collect_image_paths, walk_images

__all__ = [
    "BIT_DEPTH_POLICIES",
    "BIT_DEPTH_POLICY",
    "EXTENSIONS_BY_FORMAT",
    "IMAGE_EXTENSIONS",
    "REFUSED_FORMATS",
    "ImageListing",
    "ImageLoadError",
    "WalkEntry",
    "collect_image_paths",
    "decode_warnings",
    "load_and_preprocess",
    "load_image",
    "prune_folder",
    "skip_reason",
    "summarize_skipped",
    "walk_images",
]
