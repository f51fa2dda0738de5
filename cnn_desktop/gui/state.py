"""Application state shared by the window's parts: the active model and user settings."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QSettings

from cnn_desktop.core.backends import Classifier
from cnn_desktop.core.bundle import ModelBundle

MAX_RECENT_MODELS = 8


@dataclass(frozen=True)
class ActiveModel:
    """The model the window classifies with, on the backend and device actually in use."""

    bundle: ModelBundle
    classifier: Classifier

    def status_text(self) -> str:
        """One line for the status bar."""
        spec = self.bundle.spec
        return (
            f"{spec.name} · {spec.num_classes} classes · "
            f"{self.classifier.backend} on {self.classifier.device}"
        )


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
    def backend(self) -> str:
        value = str(self._get("classify/backend", "onnx", str))
        return value if value in ("onnx", "torch") else "onnx"

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

    @property
    def recent_models(self) -> list[str]:
        value = self.qsettings.value("models/recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value or []][:MAX_RECENT_MODELS]

    def add_recent_model(self, path: str) -> None:
        recent = [p for p in self.recent_models if p != path]
        self.qsettings.setValue("models/recent", [path, *recent][:MAX_RECENT_MODELS])
