"""Application state shared by the window's parts: the active model and user settings."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from PySide6.QtCore import QSettings

from cnn_desktop.core.inference import Classifier
from cnn_desktop.core.models import ModelBundle
from cnn_desktop.core.training import DEFAULT_CACHE_LIMIT_BYTES
from cnn_desktop.core.versions import torch_installed

MAX_RECENT_MODELS = 8
MB = 1024**2
GB = 1024**3
DAY_S = 24 * 3600
DEFAULT_EMBEDDING_CACHE_GB = DEFAULT_CACHE_LIMIT_BYTES / GB
_serials = itertools.count(1)


@dataclass(frozen=True)
class ActiveModel:
    """The model the window classifies with, on the backend and device actually in use.

    ``serial`` tells every opened model apart (also the same file opened twice): results
    carry it, so what an older model computed is never shown as the current one's.
    """

    bundle: ModelBundle
    classifier: Classifier
    serial: int = field(default_factory=lambda: next(_serials))

    def status_text(self) -> str:
        """One line for the status bar."""
        spec = self.bundle.spec
        return (
            f"{spec.name} · {spec.num_classes} classes · "
            f"{self.classifier.backend} on {self.classifier.device}"
        )


def _limit_setting(key: str, default: float, doc: str) -> property:
    """A non-negative number kept under ``key`` (anything else reads as ``default``)."""

    def read(settings: Settings) -> float:
        value = float(settings._get(key, default, float))  # type: ignore[arg-type]
        return value if value >= 0 else default

    def write(settings: Settings, value: float) -> None:
        settings.qsettings.setValue(key, float(value))

    return property(read, write, doc=doc)


class Settings:
    """Typed access to the persisted settings (QSettings)."""

    def __init__(self, settings: QSettings | None = None) -> None:
        self.qsettings = settings or QSettings("cnn-desktop", "cnn-desktop")

    def _get(self, key: str, default: object, kind: type) -> object:
        value = self.qsettings.value(key, default)
        try:
            return kind(value)
        except (TypeError, ValueError):
            return default

    @property
    def top_k(self) -> int:
        return max(1, min(20, int(self._get("classify/top_k", 5, int))))  # type: ignore[call-overload]

    @top_k.setter
    def top_k(self, value: int) -> None:
        self.qsettings.setValue("classify/top_k", int(value))

    @property
    def tta(self) -> bool:
        """Test-time augmentation (View menu): probabilities averaged over flips and crops."""
        return str(self.qsettings.value("classify/tta", False)).lower() in ("true", "1")

    @tta.setter
    def tta(self, value: bool) -> None:
        self.qsettings.setValue("classify/tta", bool(value))

    @property
    def backend(self) -> str:
        value = str(self._get("classify/backend", "onnx", str))
        usable = ("onnx", "torch") if torch_installed() else ("onnx",)
        return value if value in usable else "onnx"

    @backend.setter
    def backend(self, value: str) -> None:
        self.qsettings.setValue("classify/backend", value)

    @property
    def device(self) -> str:
        value = str(self._get("classify/device", "auto", str))
        return value if value in ("auto", "cpu", "cuda") else "auto"

    @device.setter
    def device(self, value: str) -> None:
        self.qsettings.setValue("classify/device", value)

    @property
    def last_folder(self) -> str:
        return str(self._get("paths/last_folder", "", str))

    @last_folder.setter
    def last_folder(self, value: str) -> None:
        self.qsettings.setValue("paths/last_folder", value)

    pasted_max_mb = _limit_setting(
        "cache/pasted_max_mb", 500.0, "Pasted images kept (MB, oldest deleted first)."
    )
    pasted_max_age_days = _limit_setting(
        "cache/pasted_max_age_days", 30.0, "Pasted images older than this are deleted."
    )
    embedding_cache_max_gb = _limit_setting(
        "cache/embeddings_max_gb",
        DEFAULT_EMBEDDING_CACHE_GB,
        "Size the head-training embedding cache is kept under (least recently used go).",
    )

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking store the window's runs are also recorded in (``sqlite:///…``,
        ``http://server:5000``); "": ``MLFLOW_TRACKING_URI``, or the local records only."""
        return str(self._get("runs/tracking_uri", "", str)).strip()

    @tracking_uri.setter
    def tracking_uri(self, value: str) -> None:
        self.qsettings.setValue("runs/tracking_uri", value.strip())

    @property
    def recent_models(self) -> list[str]:
        value = self.qsettings.value("models/recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value or []][:MAX_RECENT_MODELS]

    def add_recent_model(self, path: str) -> None:
        recent = [p for p in self.recent_models if p != path]
        self.qsettings.setValue("models/recent", [path, *recent][:MAX_RECENT_MODELS])
