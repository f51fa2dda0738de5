"""Heatmaps and overlays written into a folder, never over an existing file.

Each pair of files is written whole under temporary names, then linked to ``NAME<suffix>``
for the first ``NAME`` (``name``, ``name-2``, ...) under which neither exists: a hard link
fails instead of replacing, so two writers, or a file from an earlier run, are never
overwritten, and a crash leaves no half-written file under a real name.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from cnn_desktop.core.explain.geometry import heatmap_to_uint8
from cnn_desktop.core.explain.visual import overlay

MAX_NAME_ATTEMPTS = 10_000
OVERLAY_QUALITY = 90
UNSEEN_BRIGHTNESS = 0.5


class ExplanationWriter:
    """Writes heatmaps and overlays into one folder, never over an existing file."""

    def __init__(self, folder: str | os.PathLike[str], opacity: float = 0.5) -> None:
        """Args:
            folder: Where the files go (created if needed).
            opacity: How strongly the coloured map covers the image in overlays.

        Raises:
            OSError: The folder cannot be created.
        """
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.opacity = opacity

    def write(
        self,
        name: str,
        heatmap: np.ndarray,
        background: Image.Image,
        suffixes: tuple[str, str],
        seen: tuple[int, int, int, int] | None = None,
    ) -> tuple[Path, Path]:
        """Write a 0..1 ``heatmap`` (the background's size) as 8-bit grey PNG and coloured
        over ``background`` as JPEG, as ``NAME<suffix>`` under the first free ``NAME``.

        Args:
            name: The name before the suffixes.
            heatmap: ``[height, width]`` values 0..1.
            background: The image the overlay colours.
            suffixes: The heatmap's and the overlay's.
            seen: The pixel box the model saw; the overlay leaves the rest uncoloured and
                darker (default: the whole image was seen).

        Raises:
            OSError: The files cannot be written (nothing is left behind).
        """
        grey = Image.fromarray(heatmap_to_uint8(heatmap), "L")
        coloured = overlay(background, heatmap, opacity=self.opacity)
        if seen is not None and seen != (0, 0, *coloured.size):
            unseen = ImageEnhance.Brightness(background.convert("RGB")).enhance(UNSEEN_BRIGHTNESS)
            unseen.paste(coloured.crop(seen), seen[:2])
            coloured = unseen
        temps = []
        try:
            temps.append(self._temp(lambda path: grey.save(path, "PNG")))
            temps.append(
                self._temp(lambda path: coloured.save(path, "JPEG", quality=OVERLAY_QUALITY))
            )
            heat_path, overlay_path = _claim_names(temps, self.folder, name, suffixes)
        finally:
            for temp in temps:
                temp.unlink(missing_ok=True)
        return heat_path, overlay_path

    def _temp(self, save: Callable[[Path], None]) -> Path:
        temp = _new_temp_file(self.folder)
        try:
            save(temp)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return temp


def _new_temp_file(folder: Path) -> Path:
    """Create an empty hidden ``.cnn-desktop-XXXX.part`` file in ``folder``, with the mode
    (0o666 less the umask) of any file the user writes, unlike ``mkstemp``'s 0o600."""
    for _ in range(100):
        temp = folder / f".cnn-desktop-{secrets.token_hex(6)}.part"
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temp
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


def _claim_names(
    temps: list[Path], folder: Path, name: str, suffixes: tuple[str, ...]
) -> list[Path]:
    """Give each finished temporary file ``NAME<suffix>`` for the first ``NAME`` (``name``,
    ``name-2``, ...) under which none of them exists yet."""
    for attempt in range(1, MAX_NAME_ATTEMPTS):
        stem = name if attempt == 1 else f"{name}-{attempt}"
        targets = [folder / f"{stem}{suffix}" for suffix in suffixes]
        if any(os.path.lexists(target) for target in targets):
            continue
        claimed: list[Path] = []
        try:
            for temp, target in zip(temps, targets, strict=True):
                _claim(temp, target)
                claimed.append(target)
        except FileExistsError:  # another writer took one of the names meanwhile
            for target in claimed:
                target.unlink(missing_ok=True)
            continue
        return targets
    raise OSError(f"no free file name for {name} in {folder}")


def _claim(temp: Path, target: Path) -> None:
    """Give ``temp`` the name ``target``, failing with FileExistsError rather than replacing."""
    try:
        os.link(temp, target)  # atomic, and fails instead of overwriting
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # no hard links on this file system (FAT, some network shares)
    if os.name == "nt":
        os.rename(temp, target)  # Windows' rename refuses to overwrite
        return
    if os.path.lexists(target):
        raise FileExistsError(target)
    os.replace(temp, target)
