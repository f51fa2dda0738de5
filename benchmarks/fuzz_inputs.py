"""Seed files of every allowed image format and the mutations the image-loader fuzzers apply.

Shared by ``tests/core/test_fuzz_images.py`` (hypothesis draws the mutations) and
``benchmarks/fuzz_images.py`` (a seeded random generator draws them). Every seed is a small
crop of a real photo (scikit-image's ``chelsea``) written as real file bytes: by Pillow or
``pillow-heif`` where they write the format, by hand (a few struct calls) where they do not
(PSD, CUR, DCX, ICNS, SUN, XPM). Small seeds keep each decode quick, so most of the time goes
to the damaged headers and streams that matter.
"""

from __future__ import annotations

import io
import random
import re
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageCms

from cnn_desktop.core.imaging import EXTENSIONS_BY_FORMAT

SEED_SIZE = (67, 45)
"""Width and height of most seeds: odd values, so their header fields are easy to find."""

INTERESTING = (0, 1, 2, 3, 7, 8, 15, 16, 0x7F, 0x80, 0xFF, 0x100, 0x3FF, 0x1000, 0x7FFF, 0x8000)
INTERESTING += (0xFFFF, 0x10000, 10_000, 46_341, 65_500, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
"""Values that break parsers: zero, sign and width boundaries, sizes just under the limits."""

MUTATION_KINDS = ("flip", "insert", "delete", "truncate", "integer", "dimension", "splice", "crc")
"""``crc`` recomputes the checksums of PNG chunks (also inside ICO and ICNS), so the edits
before it reach the decoder instead of failing the checksum."""


class Seed(NamedTuple):
    """One real image file: its allowed Pillow format, a file name and its bytes."""

    format: str
    name: str
    data: bytes


class Mutation(NamedTuple):
    """One edit of a file; ``position`` and ``value`` are reduced to the file they edit."""

    kind: str
    """One of :data:`MUTATION_KINDS`."""
    position: int
    """Byte offset (taken modulo the length); for ``dimension``, which size field."""
    value: int
    """The kind's parameter: bit, byte count, interesting value and width, splice target."""


def photo(size: tuple[int, int] = SEED_SIZE) -> Image.Image:
    """The real photo every seed shows: scikit-image's cat, resized to ``size``."""
    from skimage import data

    return Image.fromarray(data.chelsea()).resize(size, Image.Resampling.BILINEAR)


def _saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _packbits(row: bytes) -> bytes:
    """PackBits with literal runs only (valid for PSD, TIFF and ICNS-style readers)."""
    return b"".join(
        bytes([len(c) - 1]) + c for c in (row[i : i + 128] for i in range(0, len(row), 128))
    )


def _psd_rle(image: Image.Image) -> bytes:
    """An RGB PSD as Photoshop writes it: empty sections and a PackBits (RLE) composite."""
    width, height = image.size
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    rows = [
        _packbits(band.tobytes()[y * width : (y + 1) * width])
        for band in image.split()
        for y in range(height)
    ]
    counts = b"".join(struct.pack(">H", len(row)) for row in rows)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 1) + counts + b"".join(rows)


def _cur(image: Image.Image) -> bytes:
    """A cursor: an icon of bitmaps whose type field says 2, with a hotspot."""
    icon = bytearray(_saved(image, "ICO", sizes=[(32, 32)], bitmap_format="bmp"))
    icon[2] = 2
    icon[10:14] = struct.pack("<HH", 3, 5)  # hotspot instead of planes / bit count
    return bytes(icon)


def _dcx(image: Image.Image) -> bytes:
    """A DCX: its magic, a page table ending in 0, then two PCX pages."""
    pages = [_saved(image, "PCX"), _saved(image.convert("P"), "PCX")]
    offset = 4 + 4 * (len(pages) + 1)
    table = b""
    for page in pages:
        table += struct.pack("<I", offset)
        offset += len(page)
    return struct.pack("<I", 987654321) + table + struct.pack("<I", 0) + b"".join(pages)


def _icns(image: Image.Image) -> bytes:
    """An ICNS with a 32 × 32 RLE icon and its mask, and a 64 × 64 PNG one."""
    small = image.resize((32, 32))
    rle = b"".join(_packbits(band.tobytes()) for band in small.split())
    entries = [
        (b"il32", rle),
        (b"l8mk", bytes([255]) * 32 * 32),
        (b"icp6", _saved(image.resize((64, 64)), "PNG")),
    ]
    body = b"".join(kind + struct.pack(">I", len(data) + 8) + data for kind, data in entries)
    return b"icns" + struct.pack(">I", len(body) + 8) + body


def _sun(image: Image.Image, depth: int) -> bytes:
    """A Sun raster, 24-bit BGR or 8-bit with an RGB colour map; rows padded to 16 bits."""
    width, height = image.size
    if depth == 24:
        pixels, rowbytes, cmap = image.convert("RGB").tobytes("raw", "BGR"), width * 3, b""
    else:
        indexed = image.quantize(16)
        palette = indexed.getpalette()[: 16 * 3]
        pixels, rowbytes = indexed.tobytes(), width
        cmap = bytes(palette[0::3] + palette[1::3] + palette[2::3])
    pad = b"\0" * (rowbytes % 2)
    data = b"".join(pixels[y * rowbytes : (y + 1) * rowbytes] + pad for y in range(height))
    header = struct.pack(
        ">8I", 0x59A66A95, width, height, depth, len(data), 1, int(bool(cmap)), len(cmap)
    )
    return header + cmap + data


def _xpm(image: Image.Image) -> bytes:
    """An XPM with a 16-colour palette, one character per pixel and a transparent colour."""
    indexed = image.quantize(15)
    palette = indexed.getpalette()
    keys = "abcdefghijklmnop"
    width, height = image.size
    lines = [f'"{width} {height} 16 1",', '"p c None",']
    for i in range(15):
        r, g, b = palette[3 * i : 3 * i + 3]
        lines.append(f'"{keys[i]} c #{r:02X}{g:02X}{b:02X}",')
    pixels = indexed.tobytes()
    rows = [
        '"' + "".join(keys[p] for p in pixels[y * width : (y + 1) * width]) + '",'
        for y in range(height)
    ]
    text = "/* XPM */\nstatic char *cat[] = {\n" + "\n".join(lines + rows) + "\n};\n"
    return text.encode()


def _heic(image: Image.Image) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()  # as the loader does once it meets a HEIF file
    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(out, format="HEIF", quality=70)
    return out.getvalue()


def _frames(image: Image.Image, fmt: str, **options: object) -> bytes:
    second = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return _saved(image, fmt, save_all=True, append_images=[second], **options)


def _writers(image: Image.Image) -> dict[str, list[tuple[str, Callable[[], bytes]]]]:
    """Per format, ``(file name, write)`` for each seed variant (modes, codecs, layouts)."""
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(image.size))
    gray = np.asarray(image.convert("L"))
    gray16 = Image.fromarray(gray.astype(np.uint16) * 8 + 1000)  # 12 bits used, narrow range
    floats = Image.fromarray(gray.astype(np.float32) / 255.0)
    palette = image.quantize(32)
    palette.info["transparency"] = 0
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90°
    return {
        "JPEG": [
            ("exif_icc.jpg", lambda: _saved(image, "JPEG", exif=exif, icc_profile=srgb)),
            ("progressive_gray.jpg", lambda: _saved(image.convert("L"), "JPEG", progressive=True)),
            ("cmyk.jpg", lambda: _saved(image.convert("CMYK"), "JPEG", quality=80)),
        ],
        "MPO": [("frames.mpo", lambda: _frames(image, "MPO"))],
        "PNG": [
            ("rgb.png", lambda: _saved(image, "PNG")),
            ("alpha.png", lambda: _saved(rgba, "PNG", icc_profile=srgb)),
            ("gray16.png", lambda: _saved(gray16, "PNG")),
            ("palette.png", lambda: _saved(palette, "PNG", transparency=0)),
            ("animated.png", lambda: _frames(image, "PNG")),
        ],
        "GIF": [("animated.gif", lambda: _frames(palette, "GIF"))],
        "BMP": [
            ("rgb.bmp", lambda: _saved(image, "BMP")),
            ("palette.bmp", lambda: _saved(palette, "BMP")),
            ("bilevel.bmp", lambda: _saved(image.convert("1"), "BMP")),
        ],
        "TIFF": [
            ("lzw.tif", lambda: _saved(image, "TIFF", compression="tiff_lzw", exif=exif)),
            ("packbits.tif", lambda: _saved(rgba, "TIFF", compression="packbits")),
            ("gray16.tif", lambda: _saved(gray16, "TIFF", compression="tiff_adobe_deflate")),
            ("float.tif", lambda: _saved(floats, "TIFF")),
            ("jpeg.tif", lambda: _saved(image, "TIFF", compression="jpeg")),
            ("pages.tif", lambda: _frames(image, "TIFF")),
        ],
        "WEBP": [
            ("lossy.webp", lambda: _saved(image, "WEBP", quality=70)),
            ("lossless.webp", lambda: _saved(rgba, "WEBP", lossless=True)),
            ("animated.webp", lambda: _frames(image, "WEBP")),
        ],
        "PPM": [
            ("rgb.ppm", lambda: _saved(image, "PPM")),
            ("gray16.pgm", lambda: _saved(gray16, "PPM")),
            ("bilevel.pbm", lambda: _saved(image.convert("1"), "PPM")),
            (
                "plain.pgm",
                lambda: (
                    b"P2\n67 45\n255\n" + " ".join(map(str, image.convert("L").tobytes())).encode()
                ),
            ),
        ],
        "ICO": [
            ("png.ico", lambda: _saved(image, "ICO", sizes=[(16, 16), (48, 48)])),
            ("bmp.ico", lambda: _saved(rgba, "ICO", sizes=[(32, 32)], bitmap_format="bmp")),
        ],
        "CUR": [("cursor.cur", lambda: _cur(image))],
        "HEIF": [("photo.heic", lambda: _heic(image))],
        "AVIF": [("photo.avif", lambda: _saved(image, "AVIF", quality=60))],
        "JPEG2000": [
            ("photo.jp2", lambda: _saved(image, "JPEG2000")),
            ("codestream.j2k", lambda: _saved(image, "JPEG2000", irreversible=True)),
        ],
        "TGA": [
            ("raw.tga", lambda: _saved(image, "TGA")),
            ("rle.tga", lambda: _saved(rgba, "TGA", compression="tga_rle")),
        ],
        "PSD": [("rle.psd", lambda: _psd_rle(image))],
        "QOI": [
            ("rgb.qoi", lambda: _saved(image, "QOI")),
            ("alpha.qoi", lambda: _saved(rgba, "QOI")),
        ],
        "PCX": [
            ("rgb.pcx", lambda: _saved(image, "PCX")),
            ("palette.pcx", lambda: _saved(palette, "PCX")),
        ],
        "DCX": [("pages.dcx", lambda: _dcx(image))],
        "SGI": [
            ("rgb.sgi", lambda: _saved(image, "SGI")),
            ("gray.bw", lambda: _saved(image.convert("L"), "SGI")),
        ],
        "DDS": [
            ("rgba.dds", lambda: _saved(rgba, "DDS")),
            ("dxt1.dds", lambda: _saved(image.resize((64, 44)), "DDS", pixel_format="DXT1")),
            ("dxt5.dds", lambda: _saved(rgba.resize((64, 44)), "DDS", pixel_format="DXT5")),
        ],
        "ICNS": [("icon.icns", lambda: _icns(image))],
        "SUN": [("rgb.ras", lambda: _sun(image, 24)), ("palette.ras", lambda: _sun(image, 8))],
        "MSP": [("bilevel.msp", lambda: _saved(image.convert("1"), "MSP"))],
        "XBM": [("bilevel.xbm", lambda: _saved(image.convert("1"), "XBM"))],
        "XPM": [("palette.xpm", lambda: _xpm(image))],
    }


_OPENED_AS = {"MPO": "JPEG"}  # Pillow's JPEG opener is the one that returns MPO files


def seed_files() -> list[Seed]:
    """One or more real image files of every allowed format, each checked to decode as that format.

    Raises:
        AssertionError: A writer missed an allowed format or wrote a file Pillow reads as
            another format (the fuzzers would not be testing what they claim).
    """
    image = photo()
    writers = _writers(image)
    assert set(writers) == set(EXTENSIONS_BY_FORMAT), set(writers) ^ set(EXTENSIONS_BY_FORMAT)
    seeds = []
    for fmt, variants in writers.items():
        for name, write in variants:
            assert any(name.endswith(s) for s in EXTENSIONS_BY_FORMAT[fmt]), name
            data = write()
            with Image.open(io.BytesIO(data), formats=[_OPENED_AS.get(fmt, fmt)]) as written:
                written.load()
                assert written.format == fmt, (name, written.format)
            seeds.append(Seed(fmt, name, data))
    return seeds


def random_mutations(rng: random.Random, length: int) -> list[Mutation]:
    """One to four edits, half of them in the first 128 bytes (the headers); a third of the
    time the PNG checksums are fixed up afterwards."""
    mutations = []
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
        kind = rng.choice(MUTATION_KINDS[:-1])
        head = rng.random() < 0.5
        position = rng.randrange(min(length, 128) if head else max(length, 1))
        mutations.append(Mutation(kind, position, rng.randrange(1 << 20)))
    if rng.random() < 1 / 3:
        mutations.append(Mutation("crc", 0, 0))
    return mutations


def apply_mutations(seed: Seed, mutations: Sequence[Mutation]) -> bytes:
    """The seed's bytes with ``mutations`` applied in order.

    Args:
        seed: The real file.
        mutations: Edits; positions and values are reduced to the bytes they edit, so any
            integers are valid (hypothesis shrinks them towards the file's first byte).

    Returns:
        The mutated bytes (possibly empty).
    """
    data = bytearray(seed.data)
    fields = size_fields(seed.data)
    for kind, position, value in mutations:
        if not data:
            break
        at = position % len(data)
        if kind == "flip":
            data[at] ^= 1 << (value % 8)
        elif kind == "insert":
            filler = (b"\0", b"\xff", b"\x7f", bytes([value & 0xFF]))[(value >> 8) % 4]
            data[at:at] = filler * ((value >> 10) % 64 + 1)
        elif kind == "delete":
            del data[at : at + value % 64 + 1]
        elif kind == "truncate":
            del data[at:]
        elif kind == "crc":
            _fix_png_checksums(data)
        elif kind == "splice":  # copy a block of the file over another place in it
            size = value % 256 + 1
            block = data[at : at + size]
            target = (value >> 8) % len(data)
            data[target : target + len(block)] = block
        else:
            if kind == "dimension" and fields:
                at, width, order = fields[position % len(fields)]
            else:
                width, order = (1, 2, 4)[value % 3], ("big", "little")[(value >> 2) % 2]
            number = INTERESTING[(value >> 3) % len(INTERESTING)]
            if order == "ascii":
                digits = str(number).encode()
                data[at : at + width] = digits
            else:
                data[at : at + width] = (number % (1 << (8 * width))).to_bytes(width, order)
    return bytes(data)


def size_fields(data: bytes) -> list[tuple[int, int, str]]:
    """Where a seed's header stores its width or height: ``(offset, width, byte order)``.

    Looks in the first and last 512 bytes (TIFF writers put the IFD at the end) for the
    seed sizes (and size - 1, as PCX stores them) as 16- and 32-bit integers of either byte
    order and as ASCII digits (PPM, XBM, XPM).
    """
    found: set[tuple[int, int, str]] = set()
    values = {v for side in (*SEED_SIZE, 16, 32, 44, 48, 64) for v in (side, side - 1)}
    for start in sorted({0, max(0, len(data) - 512)}):
        window = data[start : start + 512]
        for value in values:
            patterns = [
                (re.escape(value.to_bytes(width, order)), order)
                for width in (2, 4)
                for order in ("big", "little")
            ]
            patterns.append((rb"(?<![0-9])%d(?![0-9])" % value, "ascii"))
            for pattern, order in patterns:
                for match in re.finditer(b"(?=(%s))" % pattern, window):
                    found.add((start + match.start(), len(match.group(1)), order))
    return sorted(found)


def _fix_png_checksums(data: bytearray) -> None:
    """Recompute the CRC of every whole PNG chunk of every PNG stream in ``data``, in place."""
    start = data.find(b"\x89PNG\r\n\x1a\n")
    while start != -1:
        at = start + 8
        while at + 12 <= len(data):
            (length,) = struct.unpack_from(">I", data, at)
            end = at + 8 + length
            if end + 4 > len(data):
                break
            data[end : end + 4] = struct.pack(">I", zlib.crc32(data[at + 4 : end]))
            if data[at + 4 : at + 8] == b"IEND":
                break
            at = end + 4
        start = data.find(b"\x89PNG\r\n\x1a\n", start + 8)
