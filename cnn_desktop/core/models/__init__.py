"""What a model is: its spec, the bundle on disk, the architectures, the built-in model."""

from cnn_desktop.core.models.bundle import (
    BUNDLE_SUFFIX,
    BundleError,
    ModelBundle,
    load_bundle,
    save_bundle,
)
from cnn_desktop.core.models.pretrained import (
    PretrainedError,
    cache_dir,
    default_model_bundle,
    default_spec,
    load_pretrained_model,
)
from cnn_desktop.core.models.spec import ModelSpec
from cnn_desktop.core.models.zoo import ARCHITECTURES, SCRATCH_ARCHITECTURES, choose_input

__all__ = [
    "ARCHITECTURES",
    "BUNDLE_SUFFIX",
    "SCRATCH_ARCHITECTURES",
    "BundleError",
    "ModelBundle",
    "ModelSpec",
    "PretrainedError",
    "cache_dir",
    "choose_input",
    "default_model_bundle",
    "default_spec",
    "load_bundle",
    "load_pretrained_model",
    "save_bundle",
]
