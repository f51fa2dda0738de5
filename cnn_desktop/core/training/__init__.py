"""Fine-tuning on a folder of images: scan, split, augment, the three modes, evaluation."""

from cnn_desktop.core.training.augment import (
    AUGMENTATIONS,
    AugmentationError,
    augmentation_preview,
    parse_augmentations,
)
from cnn_desktop.core.training.config import (
    DEFAULTS,
    MODES,
    TrainConfig,
    TrainError,
    TrainEvent,
    TrainResult,
    TrainRunError,
)
from cnn_desktop.core.training.dataset import DatasetError, ScanReport, scan_folder
from cnn_desktop.core.training.embeddings import DEFAULT_CACHE_LIMIT_BYTES, prune_cache
from cnn_desktop.core.training.evaluate import evaluate_folder
from cnn_desktop.core.training.launch import Launch, check_distributed, launched
from cnn_desktop.core.training.placement import (
    bundle_path,
    check_output,
    checkpoint_path,
    free_bundle_path,
)
from cnn_desktop.core.training.run import train
from cnn_desktop.core.training.splits import make_split

__all__ = [
    "AUGMENTATIONS",
    "DEFAULTS",
    "DEFAULT_CACHE_LIMIT_BYTES",
    "MODES",
    "AugmentationError",
    "DatasetError",
    "Launch",
    "ScanReport",
    "TrainConfig",
    "TrainError",
    "TrainEvent",
    "TrainResult",
    "TrainRunError",
    "augmentation_preview",
    "bundle_path",
    "check_distributed",
    "check_output",
    "checkpoint_path",
    "evaluate_folder",
    "free_bundle_path",
    "launched",
    "make_split",
    "parse_augmentations",
    "prune_cache",
    "scan_folder",
    "train",
]
