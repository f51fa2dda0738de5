"""Safe image loading: a formats allow-list, size limits, EXIF rotation and every mode to RGB.

Everything that reads a user's image goes through :func:`load_image`, so one bad file gives an
:class:`ImageLoadError` with a one-line reason and nothing else breaks. Only the Pillow plugins
in :data:`ALLOWED_FORMATS` are ever asked to identify a file (the EPS plugin would run
Ghostscript), and the pixel count in the header is checked before any pixel is decoded.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

from PIL import Image, ImageFile, ImageOps

from cnn_desktop.core.imaging.decode_warnings import DECODE_WARNINGS_KEY, recording_warnings
from cnn_desktop.core.imaging.formats import (
    ALLOWED_FORMATS,
    EXTENSIONS_BY_FORMAT,
    FORMATS_WITHOUT_SIGNATURE,
    IMAGE_EXTENSIONS,  # noqa: F401  (re-exported: callers import it from here)
    refused_reason,
    register_heif_if_needed,
)
from cnn_desktop.core.imaging.libtiff_messages import collecting_libtiff_messages
from cnn_desktop.core.imaging.pixels import PixelError, to_rgb, to_srgb
from cnn_desktop.core.imaging.walk import (  # noqa: F401  (the walk lived here: re-exported)
    ImageListing,
    collect_image_paths,
    is_image_path,
    walk_images,
)
from cnn_desktop.core.imaging.walk import describe_os_error as _describe_os_error
from cnn_desktop.core.imaging.warnings_lock import ignoring_warnings

MAX_PIXELS: int = 120_000_000
"""Default limit on width × height, checked from the header before decoding."""

_NOT_AN_IMAGE = "not an image file (or a format cnn-desktop does not read)"
_CORRUPT = "image is truncated or corrupt"
# Refused formats recognised by their first bytes: (offset, magic, name).
_REFUSED_SIGNATURES = (
    (0, b"%!PS", "EPS"),
    (0, b"\xc5\xd0\xd3\xc6", "EPS"),
    (0, b"%PDF", "PDF"),
    (0, b"\xff\x0a", "JPEG XL"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (0, b"\xd7\xcd\xc6\x9a", "WMF"),
)
T = TypeVar("T")


class ImageLoadError(Exception):
    """One file could not be loaded; ``str(err)`` is a one-line reason for the user."""


def load_image(
    path: str | os.PathLike, *, min_side: int | None = None, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Load an image file as a fully decoded 8-bit RGB image.

    EXIF orientation is applied; an embedded colour profile is converted to sRGB;
    transparency is composited on white; 16-bit, 32-bit and float images become 8-bit by
    the bit depth policy of :mod:`cnn_desktop.core.imaging.pixels`; animations and
    multi-page files give their first frame. Decoder warnings are not printed: they are in
    the result's ``info`` (read them with ``decode_warnings``). The file is closed before
    returning.

    Args:
        path: The image file.
        min_side: If given, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (much faster) as
            long as its shorter side stays at least ``min_side`` pixels.
        max_pixels: Refuse images whose header claims more than this many pixels.

    Returns:
        A loaded ``RGB`` image that does not depend on the file.

    Raises:
        ImageLoadError: The file is missing, unreadable, not an image, in a refused format,
            too large, truncated or corrupt.
    """
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise ImageLoadError(_describe_os_error(exc)) from exc
    if stat.S_ISDIR(info.st_mode):
        raise ImageLoadError("is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise ImageLoadError("not a regular file")
    if info.st_size == 0:
        raise ImageLoadError("file is empty")
    try:
        native: list[str] = []  # libtiff's messages from C
        with open(path, "rb") as fp, collecting_libtiff_messages(native):
            warned: list[str] = []
            with recording_warnings(warned):
                im = _identify(fp, path)
            width, height = im.size
            if width <= 0 or height <= 0:
                raise ImageLoadError(_CORRUPT)
            if width * height > max_pixels:
                raise ImageLoadError(
                    f"image is {width}×{height} = {width * height:,} pixels, "
                    f"over the limit of {max_pixels:,}"
                )
            if min_side is not None and min_side > 0 and im.format in ("JPEG", "MPO"):
                im.draft("RGB", (min_side, min_side))
            try:
                pillow_limit = Image.MAX_IMAGE_PIXELS
                if pillow_limit is not None and width * height > pillow_limit:
                    _quietly(im.load)
                else:
                    im.load()
            except Image.DecompressionBombError as exc:
                raise ImageLoadError(f"image is too large to decode safely ({exc})") from exc
            except MemoryError:
                raise
            except Exception as exc:  # Pillow raises many types on damaged data.
                detail = f" ({native[0]})" if native else ""
                raise ImageLoadError(_CORRUPT + detail) from exc
            with recording_warnings(warned):
                # A damaged EXIF block should not make readable pixels unreadable.
                with contextlib.suppress(Exception):
                    ImageOps.exif_transpose(im, in_place=True)
                im, colour_warnings = to_srgb(im)
                try:
                    rgb = to_rgb(im)
                except PixelError as exc:
                    raise ImageLoadError(str(exc)) from exc
            rgb.info[DECODE_WARNINGS_KEY] = tuple(warned) + tuple(native) + colour_warnings
            return rgb
    except MemoryError as exc:
        raise ImageLoadError("not enough memory to decode the image") from exc
    except OSError as exc:
        raise ImageLoadError(_describe_os_error(exc)) from exc


def _identify(fp: IO[bytes], path: Path) -> ImageFile.ImageFile:
    """Open ``fp`` with the first allowed Pillow plugin that accepts it (header only)."""
    prefix = fp.read(16)
    accepted = False
    for fmt in _candidate_formats(prefix, path):
        factory, accept = Image.OPEN[fmt]
        verdict = accept(prefix) if accept else True
        if not verdict or isinstance(verdict, str):  # A str means "this format, no support".
            continue
        accepted = True
        fp.seek(0)
        try:
            im = _quietly(factory, fp, os.fspath(path))
        except Image.DecompressionBombError as exc:
            raise ImageLoadError(f"image is too large to decode safely ({exc})") from exc
        except (SyntaxError, IndexError, TypeError, ValueError, EOFError, OSError):
            continue
        if im.format in ALLOWED_FORMATS:
            return im
        raise ImageLoadError(f"unsupported image format {im.format}")
    if accepted:
        raise ImageLoadError(_CORRUPT)
    fp.seek(0)
    head = fp.read(512)
    for offset, magic, name in _REFUSED_SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            raise ImageLoadError(f"unsupported image format {name}: {refused_reason(name)}")
    if b"<svg" in head:
        raise ImageLoadError(f"unsupported image format SVG: {refused_reason('SVG')}")
    raise ImageLoadError(_NOT_AN_IMAGE)


def _candidate_formats(prefix: bytes, path: Path) -> list[str]:
    """The allowed Pillow formats to try on a file, in order.

    HEIF goes first once its opener is registered (its brands overlap AVIF's); formats with
    no signature (TGA) are tried last and only when the suffix names them.
    """
    heif = ["HEIF"] if register_heif_if_needed(prefix) and "HEIF" in Image.OPEN else []
    suffix = path.suffix.lower()
    others = [
        fmt
        for fmt in Image.ID
        if fmt in ALLOWED_FORMATS
        and fmt != "HEIF"
        and (fmt not in FORMATS_WITHOUT_SIGNATURE or suffix in EXTENSIONS_BY_FORMAT[fmt])
    ]
    return heif + sorted(others, key=lambda fmt: fmt in FORMATS_WITHOUT_SIGNATURE)


def _quietly(func: Callable[..., T], *args: object) -> T:
    """Call ``func`` with Pillow's DecompressionBombWarning silenced (we check sizes ourselves)."""
    with ignoring_warnings(Image.DecompressionBombWarning):
        return func(*args)
