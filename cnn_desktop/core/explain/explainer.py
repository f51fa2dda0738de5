"""One object per open model that answers "why?": feature maps, CAMs, layer summaries.

It picks the implementation for the model's backend: ONNX Runtime (intermediate outputs,
gradient-free CAM; never imports torch) or PyTorch (forward hooks, Grad-CAM). Heavy parts
(extra ONNX session, torch model) are built on first use; thread-safe. It keeps no reference
to the classifier it was made for, so an explainer still held by a finishing job never keeps an
old classification session alive.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
from PIL import Image

from cnn_desktop.core.explain.cam import (
    CLASSIC_CAM,
    GRAD_CAM,
    OCCLUSION,
    CamResult,
    class_activation_map,
    find_cam_head,
    occlusion_map,
)
from cnn_desktop.core.explain.feature_maps import (
    ExplainError,
    LayerInfo,
    OnnxFeatureExtractor,
    onnx_model_summary,
)
from cnn_desktop.core.imaging.loading import load_image
from cnn_desktop.core.imaging.preprocess import decode_min_side, fit_image, to_tensor
from cnn_desktop.core.inference.backends.base import Classifier
from cnn_desktop.core.models.bundle import ModelBundle
from cnn_desktop.core.versions import NO_TORCH, torch_installed

METHOD_TITLES = {"cam": "CAM", "grad-cam": "Grad-CAM", "occlusion": "Occlusion map"}
AUTO = "auto"
METHODS = (AUTO, CLASSIC_CAM, GRAD_CAM, OCCLUSION)


class Explainer:
    """Explanations for one model on one backend."""

    def __init__(self, bundle: ModelBundle, classifier: Classifier) -> None:
        self.bundle = bundle
        self.spec = bundle.spec
        self.backend = classifier.backend
        self._torch_device = getattr(classifier, "torch_device", None)
        self._lock = threading.Lock()
        self._onnx: OnnxFeatureExtractor | None = None
        self._torch: Any = None
        self._model: Any = None
        self._cam_head: bool | None = None
        self._model_lock = threading.Lock()
        # One forward pass at a time on the torch model: hooks are attached per call, and
        # every hook sees every forward pass (a summary's would feed a Grad-CAM's hooks).
        self._torch_call = threading.Lock()

    def network_input(self, path: str | os.PathLike[str]) -> tuple[np.ndarray, Image.Image]:
        """Load an image: the network input ``[C, H, W]`` and the RGB crop the network sees."""
        image = load_image(path, min_side=decode_min_side(self.spec))
        crop = fit_image(image, self.spec)
        return to_tensor(crop, self.spec), crop.convert("RGB")

    def _onnx_extractor(self) -> OnnxFeatureExtractor:
        with self._lock:
            if self._onnx is None:
                self._onnx = OnnxFeatureExtractor(self.bundle)
            return self._onnx

    def _torch_extractor(self) -> Any:
        with self._lock:
            if self._torch is None:
                from cnn_desktop.core.explain.feature_maps_torch import TorchFeatureExtractor

                self._torch = TorchFeatureExtractor(self._torch_model(), spec=self.spec)
            return self._torch

    def _torch_model(self) -> Any:
        """Explanations' own copy of the torch model: hooks and gradients on it never meet
        a classification running on the classifier's model in another thread."""
        with self._model_lock:
            if self._model is None:
                from cnn_desktop.core.inference.backends.torch import load_torch_model

                model = load_torch_model(self.bundle)
                device = self._torch_device
                self._model = model.to(device) if device is not None else model
            return self._model

    def _extractor(self) -> Any:
        return self._torch_extractor() if self.backend == "torch" else self._onnx_extractor()

    def conv_layers(self) -> list[str]:
        """Every convolutional layer, earliest first."""
        if self.backend != "torch":
            return self._onnx_extractor().conv_layers()
        extractor = self._torch_extractor()
        with self._torch_call:  # found by a forward pass with hooks
            return extractor.conv_layers()

    def feature_maps(self, tensor: np.ndarray, layer: str) -> np.ndarray:
        """Activations ``[channels, h, w]`` of ``layer`` for one network input."""
        if self.backend != "torch":
            return self._onnx_extractor().feature_maps(tensor, layer)
        extractor = self._torch_extractor()
        with self._torch_call:
            return extractor.feature_maps(tensor, layer)

    def cam(self, tensor: np.ndarray, class_index: int) -> CamResult:
        """Grad-CAM on PyTorch; the gradient-free CAM (or occlusion) on ONNX Runtime."""
        return self.explain(tensor, class_index, AUTO)

    def has_cam_head(self) -> bool:
        """Whether the ONNX graph ends in global average pooling and one linear layer, so the
        classic CAM can be read off it (it is exact there)."""
        if self._cam_head is None:
            extractor = self._onnx_extractor()
            head = find_cam_head(extractor.graph, self.spec.output_name)
            self._cam_head = head is not None and head.features in extractor.feature_tensors
        return self._cam_head

    def resolve_method(self, method: str) -> str:
        """The method ``method`` stands for on this model and backend.

        ``auto`` is Grad-CAM on the PyTorch backend, the classic CAM on ONNX Runtime where the
        network ends in a global average pool, occlusion otherwise.

        Raises:
            ExplainError: Unknown method, Grad-CAM without PyTorch, or classic CAM on a
                network without a global-pool head.
        """
        if method not in METHODS:
            raise ExplainError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")
        if method == AUTO:
            if self.backend == "torch":
                return GRAD_CAM
            return CLASSIC_CAM if self.has_cam_head() else OCCLUSION
        if method == GRAD_CAM and not torch_installed():
            raise ExplainError(
                f"Grad-CAM needs PyTorch, and {NO_TORCH}; the cam and occlusion methods work "
                "without it"
            )
        if method == GRAD_CAM and self.bundle.weights_path is None:
            raise ExplainError(
                f"Grad-CAM needs the model's PyTorch weights, and {self.bundle.path.name} has "
                "none; the cam and occlusion methods work on the ONNX graph alone"
            )
        if method == CLASSIC_CAM and not self.has_cam_head():
            raise ExplainError(
                f"{self.spec.name} does not end in a global average pool and one linear layer, "
                "so it has no classic CAM; use the occlusion method"
            )
        return method

    def explain(self, tensor: np.ndarray, class_index: int, method: str = AUTO) -> CamResult:
        """A map of the evidence for ``class_index`` in one network input, by ``method``
        (see :meth:`resolve_method`; Grad-CAM runs on a torch copy of the model whatever
        the backend).

        Raises:
            ExplainError: As :meth:`resolve_method`, or the class is out of range.
        """
        chosen = self.resolve_method(method)
        if chosen == GRAD_CAM:
            from cnn_desktop.core.explain.cam import grad_cam

            model = self._torch_model()
            with self._torch_call:
                return grad_cam(model, tensor, class_index)
        if chosen == OCCLUSION:
            return occlusion_map(self._onnx_extractor(), tensor, class_index)
        return class_activation_map(self._onnx_extractor(), tensor, class_index)

    def summary(self) -> list[LayerInfo]:
        """Every layer: name, type, output shape, parameters."""
        if self.backend == "torch":
            from cnn_desktop.core.explain.feature_maps_torch import torch_model_summary

            model = self._torch_model()
            with self._torch_call:
                return torch_model_summary(model, (self.spec.channels, *self.spec.input_size))
        return onnx_model_summary(self.bundle)

    def warm_up(self) -> None:
        """Create the feature-map session now (in the background, when a model opens) rather
        than on the first request, which may come in the middle of a batch."""
        if self.backend != "torch":
            _ = self._onnx_extractor().session

    def kernels(self) -> np.ndarray | None:
        """First-layer kernels as RGB tiles ``[N, kh, kw, 3]`` (uint8), if there is a conv."""
        return self._onnx_extractor().kernels_rgb()
