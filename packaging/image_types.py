"""The image types cnn-desktop reads, as file extensions and MIME types, read off the code.

    python packaging/image_types.py mime         the .desktop MimeType= value
    python packaging/image_types.py extensions   one extension per line, without the dot
    python packaging/image_types.py inno         Inno Setup [Registry] lines ("Open with")

The desktop entry, the macOS bundle and the Windows installer are generated from
``IMAGE_EXTENSIONS`` at build time, so a format the app learns to read is offered in the
"Open with" lists without editing the packaging. An extension with no MIME type known here
stops the build: add it to ``MIME_TYPES``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Names as in freedesktop.org's shared-mime-info; formats the app may read one day included.
MIME_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "jpe": "image/jpeg",
    "jfif": "image/jpeg",
    "mpo": "image/jpeg",  # multi-picture JPEG (cameras); no type of its own
    "png": "image/png",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "webp": "image/webp",
    "ppm": "image/x-portable-pixmap",
    "pgm": "image/x-portable-graymap",
    "pbm": "image/x-portable-bitmap",
    "pnm": "image/x-portable-anymap",
    "ico": "image/vnd.microsoft.icon",
    "heic": "image/heif",
    "heif": "image/heif",
    "avif": "image/avif",
    "jp2": "image/jp2",
    "j2k": "image/jp2",
    "jxl": "image/jxl",
    "tga": "image/x-tga",
    "dds": "image/x-dds",
    "dib": "image/bmp",
    "cur": "image/x-win-bitmap",
    "hif": "image/heif",
    "j2c": "image/x-jp2-codestream",
    "jpc": "image/x-jp2-codestream",
    "jpx": "image/jpx",
    "jpf": "image/jpx",
    "psd": "image/vnd.adobe.photoshop",
    "qoi": "image/qoi",
    "pcx": "image/vnd.zbrush.pcx",
    "dcx": "image/x-dcx",
    "sgi": "image/x-sgi",
    "rgb": "image/x-rgb",
    "rgba": "image/x-sgi",
    "bw": "image/x-sgi",
    "icns": "image/x-icns",
    "ras": "image/x-sun-raster",
    "msp": "image/x-msp",
    "xbm": "image/x-xbitmap",
    "xpm": "image/x-xpixmap",
}


def image_extensions() -> list[str]:
    """Lower-case extensions without the dot, sorted."""
    from cnn_desktop.core.imaging import IMAGE_EXTENSIONS

    return sorted(e.lstrip(".").lower() for e in IMAGE_EXTENSIONS)


def mime_types() -> list[str]:
    """The MIME types of every readable extension, sorted, each once."""
    unknown = [e for e in image_extensions() if e not in MIME_TYPES]
    if unknown:
        raise SystemExit(f"image_types.py: no MIME type for {', '.join(unknown)}: add it")
    return sorted({MIME_TYPES[e] for e in image_extensions()})


def inno_registry() -> list[str]:
    """Inno Setup [Registry] entries offering cnn-desktop in Explorer's "Open with" list."""
    progid = r"Software\Classes\cnn-desktop.Image"
    lines = [
        f'Root: HKA; Subkey: "{progid}"; ValueType: string; ValueData: "Image (cnn-desktop)"; '
        "Flags: uninsdeletekey",
        f'Root: HKA; Subkey: "{progid}\\DefaultIcon"; ValueType: string; '
        'ValueData: "{app}\\cnn-desktop.exe,0"',
        f'Root: HKA; Subkey: "{progid}\\shell\\open\\command"; ValueType: string; '
        'ValueData: """{app}\\cnn-desktop.exe"" gui ""%1"""',
    ]
    supported = r"Software\Classes\Applications\cnn-desktop.exe\SupportedTypes"
    for extension in image_extensions():
        lines.append(
            f'Root: HKA; Subkey: "Software\\Classes\\.{extension}\\OpenWithProgids"; '
            'ValueType: string; ValueName: "cnn-desktop.Image"; ValueData: ""; '
            "Flags: uninsdeletevalue"
        )
        lines.append(
            f'Root: HKA; Subkey: "{supported}"; ValueType: string; ValueName: ".{extension}"; '
            'ValueData: ""; Flags: uninsdeletevalue'
        )
    return lines


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "mime"
    if what == "mime":
        print(";".join(mime_types()) + ";")
    elif what == "extensions":
        print("\n".join(image_extensions()))
    elif what == "inno":
        print("\n".join(inno_registry()))
    else:
        raise SystemExit("usage: image_types.py mime|extensions|inno")
