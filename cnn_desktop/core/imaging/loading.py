"""Safe image loading: a formats allow-list, size limits, EXIF rotation and every mode to RGB.

Everything that reads a user's image goes through :func:`load_image`, so one bad file gives an
:class:`ImageLoadError` with a one-line reason and nothing else breaks. Only the Pillow plugins
in :data:`ALLOWED_FORMATS` are ever asked to identify a file (the EPS plugin would run
Ghostscript), and the pixel count in the header is checked before any pixel is decoded (against
:data:`MAX_PIXELS`, and against what the file's size can hold). No read asks for more than is
left in the file, and a plugin's exception on a damaged file becomes an ``ImageLoadError``.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

from PIL import Image, ImageFile, ImageOps, TiffTags

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

MAX_COMPRESSION_RATIO: int = 2_000
"""Above :data:`PIXELS_OF_ANY_FILE`, the pixel data a header claims (width × height × bytes
per pixel) may be at most this many times the file's size. Real files stay far below it:
photos compress 5–50 times, a flat-colour PNG about 1,000 times (deflate's limit), a blank
1-bit fax page about 1,000 times. A small file that claims a huge image is truncated or
damaged, and decoding it (a JPEG decoder fills the missing part with grey) would take seconds
and hundreds of megabytes for nothing."""

PIXELS_OF_ANY_FILE: int = 4096 * 4096
"""Images up to this many pixels are decoded from a file of any size (a flat test card, an
icon), since decoding them is quick."""

_BITS_PER_PIXEL = {"1": 1, "L": 8, "P": 8, "LA": 16, "PA": 16, "La": 16, "RGB": 24, "YCbCr": 24}
_BITS_PER_PIXEL |= {"LAB": 24, "HSV": 24, "I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16}

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
            Above :data:`PIXELS_OF_ANY_FILE`, a header claiming more than
            :data:`MAX_COMPRESSION_RATIO` times the file's size in pixel data is refused too.

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
        with _BoundedReader(io.FileIO(path, "rb")) as fp, collecting_libtiff_messages(native):
            warned: list[str] = []
            with recording_warnings(warned):
                im = _identify(fp, path)
                _read_metadata_ahead(im)
            width, height = im.size
            if width <= 0 or height <= 0:
                raise ImageLoadError(_CORRUPT)
            if width * height > max_pixels:
                raise ImageLoadError(
                    f"image is {width}×{height} = {width * height:,} pixels, "
                    f"over the limit of {max_pixels:,}"
                )
            claimed_bytes = width * height * _BITS_PER_PIXEL.get(im.mode, 32) // 8
            if (
                width * height > PIXELS_OF_ANY_FILE
                and claimed_bytes > info.st_size * MAX_COMPRESSION_RATIO
            ):
                raise ImageLoadError(
                    f"image claims {width}×{height} pixels but the file has only "
                    f"{info.st_size:,} bytes: truncated or corrupt"
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
        except MemoryError:
            raise
        except Exception:  # Plugins raise anything on a damaged header (NotImplementedError...).
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


class _BoundedReader(io.BufferedReader):
    """A file whose ``read(n)`` never asks for more bytes than are left in it.

    Pillow's plugins read length fields straight from the header (``fp.read(length)``), and
    Python allocates all ``n`` bytes before reading: a damaged 10 KB file claiming a 4 GB
    block would need 4 GB of memory for a moment (a MemoryError under ``ulimit -v``).
    """

    def __init__(self, raw: io.FileIO) -> None:
        super().__init__(raw)
        self._file_size = os.fstat(raw.fileno()).st_size

    def read(self, size: int | None = -1, /) -> bytes:
        if size is not None and size > 0:
            size = min(size, max(self._file_size - self.tell(), 0))
        return super().read(size)


def _read_metadata_ahead(im: ImageFile.ImageFile) -> None:
    """Parse now, while warnings are recorded, the metadata Pillow would parse in ``load``.

    Pillow's TIFF ``load`` reads the EXIF IFDs after the pixels, outside the recording
    block (the pixel decode runs unlocked, in parallel); they are cached once read here.
    """
    if im.format == "TIFF":
        with contextlib.suppress(Exception):
            exif = im.getexif()
            for key in TiffTags.TAGS_V2_GROUPS:
                if key in exif:
                    exif.get_ifd(key)


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
