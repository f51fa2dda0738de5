"""Running a model: the backends, devices, batched prediction, results written to disk."""

from cnn_desktop.core.inference.backends import BackendError, Classifier, open_classifier
from cnn_desktop.core.inference.backends.onnx import OnnxClassifier
from cnn_desktop.core.inference.devices import cpu_threads
from cnn_desktop.core.inference.predict import (
    CPU_BATCH_SIZE,
    ImageResult,
    Prediction,
    classify_paths,
)
from cnn_desktop.core.inference.results import (
    SortCancelled,
    SortReport,
    sort_into_class_folders,
    write_results_csv,
)
from cnn_desktop.core.inference.sysinfo import system_info
from cnn_desktop.core.inference.unknown import UNKNOWN_MODES, choose_detector

__all__ = [
    "CPU_BATCH_SIZE",
    "UNKNOWN_MODES",
    "BackendError",
    "Classifier",
    "ImageResult",
    "OnnxClassifier",
    "Prediction",
    "SortCancelled",
    "SortReport",
    "choose_detector",
    "classify_paths",
    "cpu_threads",
    "open_classifier",
    "sort_into_class_folders",
    "system_info",
    "write_results_csv",
]
