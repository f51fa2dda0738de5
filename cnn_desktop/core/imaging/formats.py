"""The one allow-list of image formats: Pillow formats, file suffixes and why others are refused.

Folder walks, drops, the training scan, the file dialogs and the packaging's MIME list all read
:data:`IMAGE_EXTENSIONS`; :func:`skip_reason` says why any other file is left out. HEIC/HEIF
comes from ``pillow-heif``, whose opener is registered only when such a file is met
(:func:`register_heif_if_needed`), so start-up does not import it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

# Importing a plugin registers it with Pillow; only these plugins are imported.
from PIL import (  # noqa: F401
    AvifImagePlugin,
    BmpImagePlugin,
    CurImagePlugin,
    DcxImagePlugin,
    DdsImagePlugin,
    GifImagePlugin,
    IcnsImagePlugin,
    IcoImagePlugin,
    Jpeg2KImagePlugin,
    JpegImagePlugin,
    MpoImagePlugin,
    MspImagePlugin,
    PcxImagePlugin,
    PngImagePlugin,
    PpmImagePlugin,
    PsdImagePlugin,
    QoiImagePlugin,
    SgiImagePlugin,
    SunImagePlugin,
    TgaImagePlugin,
    TiffImagePlugin,
    WebPImagePlugin,
    XbmImagePlugin,
    XpmImagePlugin,
)

EXTENSIONS_BY_FORMAT: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "MPO": (".mpo",),
    "PNG": (".png",),
    "GIF": (".gif",),
    "BMP": (".bmp", ".dib"),
    "TIFF": (".tif", ".tiff"),
    "WEBP": (".webp",),
    "PPM": (".ppm", ".pgm", ".pbm", ".pnm"),
    "ICO": (".ico",),
    "CUR": (".cur",),
    "HEIF": (".heic", ".heif", ".hif"),
    "AVIF": (".avif",),
    "JPEG2000": (".jp2", ".j2k", ".j2c", ".jpc", ".jpx", ".jpf"),
    "TGA": (".tga",),
    "PSD": (".psd",),
    "QOI": (".qoi",),
    "PCX": (".pcx",),
    "DCX": (".dcx",),
    "SGI": (".sgi", ".rgb", ".rgba", ".bw"),
    "DDS": (".dds",),
    "ICNS": (".icns",),
    "SUN": (".ras",),
    "MSP": (".msp",),
    "XBM": (".xbm",),
    "XPM": (".xpm",),
}
"""Each Pillow format cnn-desktop reads and the file suffixes it goes by (PPM covers PBM,
PGM and PNM; PSD gives the flattened composite; HEIF needs ``pillow-heif``)."""

ALLOWED_FORMATS: frozenset[str] = frozenset(EXTENSIONS_BY_FORMAT)
"""Pillow format names :func:`~cnn_desktop.core.imaging.load_image` reads."""

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    suffix for suffixes in EXTENSIONS_BY_FORMAT.values() for suffix in suffixes
)
"""Lower-case file suffixes treated as images when scanning folders."""

FORMATS_WITHOUT_SIGNATURE: frozenset[str] = frozenset({"TGA"})
"""Formats with no magic bytes: tried only on files whose suffix names them."""

_GHOSTSCRIPT = "needs an external interpreter (Ghostscript)"
REFUSED_FORMATS: dict[str, str] = {
    "EPS": f"EPS {_GHOSTSCRIPT}",
    "PDF": f"PDF {_GHOSTSCRIPT}",
    "SVG": "SVG is a vector format and needs an external renderer",
    "WMF": "WMF/EMF needs an external renderer",
    "JPEG XL": "JPEG XL is not decoded without an extra plugin",
}
"""Formats people meet that are refused, and why."""

REFUSED_EXTENSIONS: dict[str, str] = {
    ".eps": "EPS",
    ".epsf": "EPS",
    ".epsi": "EPS",
    ".ps": "EPS",
    ".ai": "EPS",
    ".pdf": "PDF",
    ".svg": "SVG",
    ".svgz": "SVG",
    ".wmf": "WMF",
    ".emf": "WMF",
    ".jxl": "JPEG XL",
}

_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_heif_lock = threading.Lock()
_heif_state: dict[str, bool] = {}


def looks_like_heif(prefix: bytes) -> bool:
    """Whether a file's first bytes are an ISO media ``ftyp`` box of a HEIF brand."""
    return prefix[4:8] == b"ftyp" and prefix[8:12] in _HEIF_BRANDS


def register_heif_if_needed(prefix: bytes) -> bool:
    """Register ``pillow-heif``'s opener with Pillow the first time a HEIF file is met.

    Args:
        prefix: The file's first 16 bytes.

    Returns:
        True if the HEIF opener is registered (now or before), False if the file is not
        HEIF or ``pillow-heif`` is not installed.
    """
    if not looks_like_heif(prefix):
        return False
    with _heif_lock:
        if "registered" not in _heif_state:
            try:
                from pillow_heif import register_heif_opener
            except ImportError:
                _heif_state["registered"] = False
            else:
                register_heif_opener()
                _heif_state["registered"] = True
        return _heif_state["registered"]


def refused_reason(name: str) -> str:
    """The reason a refused format is refused, e.g. ``"EPS needs an external interpreter"``."""
    return REFUSED_FORMATS.get(name, f"{name} is not a format cnn-desktop reads")


def skip_reason(path: Path) -> str | None:
    """Why a folder walk leaves out a file, judged by its name; None for an image name.

    Args:
        path: The file (only its name is looked at).

    Returns:
        None for an image suffix, ``"hidden"`` for a dot file, the refusal reason for a
        refused format, or ``"not an image type (.txt)"``.
    """
    if path.name.startswith("."):
        return "hidden"
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return None
    if suffix in REFUSED_EXTENSIONS:
        return refused_reason(REFUSED_EXTENSIONS[suffix])
    return f"not an image type ({suffix or 'no extension'})"


def summarize_skipped(skipped: Iterable[tuple[Path, str]]) -> str:
    """One line counting skipped files by suffix: ``"12 files skipped: 10 .txt, 2 .eps"``.

    Args:
        skipped: ``(path, reason)`` pairs.

    Returns:
        The summary, or ``""`` when nothing was skipped.
    """
    kinds = Counter(path.suffix.lower() or "no extension" for path, _ in skipped)
    total = sum(kinds.values())
    if not total:
        return ""
    parts = ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())
    return f"{total} file{'s' if total != 1 else ''} skipped: {parts}"
