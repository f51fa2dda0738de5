"""A folder of awkward real-world image files, shared by the core, CLI and GUI tests.

:func:`write_bad_input_corpus` writes the files and returns what :func:`load_image` must do
with each one:

================================  =====  ===========  ====================================
name                              loads  size (w, h)  what it is / what a user must see
================================  =====  ===========  ====================================
``empty.jpg``                     no                  zero bytes -> "file is empty"
``notes.png``                     no                  a text file -> "not an image file"
``truncated.jpg``                 no                  a photo cut in half -> "truncated"
``bomb.png``                      no                  header claims 50,000 × 50,000 pixels
                                                      -> "over the limit", nothing decoded
``cmyk.jpg``                      yes    451 × 300    CMYK photo with a black plate (as
                                                      Adobe writes it) -> natural colours
``gray16.png``                    yes    256 × 32     16-bit gradient 0..65535 -> 0..255
``palette_transparent.png``       yes    64 × 32      transparent left half -> white,
                                                      opaque right half red
``animated.gif``                  yes    48 × 32      red, green, blue frames -> red
``rotated.jpg``                   yes    100 × 200    stored 200 × 100 (red left half, blue
                                                      right) with EXIF Orientation 6 ->
                                                      upright 100 × 200, red on top
``tiny.png``                      yes    1 × 1        one green pixel
``wide.png``                      yes    10000 × 8    a grey gradient strip
``folder.jpg``                    no                  a directory -> "is a directory"
================================  =====  ===========  ====================================

A folder scan (``collect_image_paths``) finds every entry except ``folder.jpg``, which is
walked as a folder (and is empty).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)


@dataclass(frozen=True)
class BadInput:
    """One file of the corpus and the outcome :func:`load_image` must give.

    Attributes:
        name: File name written in the corpus folder.
        loads: True if ``load_image`` must succeed, False if it must raise ``ImageLoadError``.
        expected_size: ``(width, height)`` after loading (after EXIF rotation), else None.
        error_contains: Lower-case fragment the error message must contain, else None.
    """

    name: str
    loads: bool
    expected_size: tuple[int, int] | None
    error_contains: str | None


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def bomb_png_bytes(width: int = 50_000, height: int = 50_000) -> bytes:
    """A small PNG whose header claims ``width`` × ``height`` RGB pixels.

    Args:
        width: Width written in the IHDR chunk.
        height: Height written in the IHDR chunk.

    Returns:
        The file's bytes: signature, a valid IHDR, a tiny IDAT and IEND (well under 1 KB).
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _photo() -> Image.Image:
    """Chelsea the cat (451 × 300), a real photo bundled with scikit-image."""
    return Image.fromarray(data.chelsea())


def _to_cmyk_with_black(image: Image.Image) -> Image.Image:
    """CMYK as print workflows make it, with a black (K) plate; Pillow's own conversion has K=0."""
    rgb = np.asarray(image.convert("RGB")).astype(float) / 255
    black = 1 - rgb.max(axis=2, keepdims=True)
    inks = (1 - rgb - black) / np.maximum(1 - black, 1e-6)
    cmyk = np.rint(np.concatenate([inks, black], axis=2) * 255).astype(np.uint8)
    return Image.frombytes("CMYK", image.size, cmyk.tobytes())


def write_bad_input_corpus(folder: Path) -> list[BadInput]:
    """Write the awkward-input corpus into ``folder`` (created if needed).

    Args:
        folder: Where to write the files.

    Returns:
        One :class:`BadInput` per file or folder written, in a fixed order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    photo = _photo()

    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text(
        "Meeting notes\n- label the plant photos\n- retrain on Friday\n", encoding="utf-8"
    )

    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90)
    jpeg = buffer.getvalue()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])

    (folder / "bomb.png").write_bytes(bomb_png_bytes())

    _to_cmyk_with_black(photo).save(folder / "cmyk.jpg", "JPEG", quality=90)

    gradient = np.rint(np.linspace(0, 65535, 256)).astype(np.uint16)
    Image.fromarray(np.tile(gradient, (32, 1))).save(folder / "gray16.png")  # mode I;16

    indices = np.zeros((32, 64), dtype=np.uint8)
    indices[:, 32:] = 1
    palette_image = Image.fromarray(indices, "L").convert("P")
    palette_image.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)  # index 0 black underneath
    palette_image.save(folder / "palette_transparent.png", transparency=0)

    frames = [Image.new("RGB", (48, 32), colour) for colour in (RED, GREEN, BLUE)]
    frames[0].save(
        folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0
    )

    stored = Image.new("RGB", (200, 100), BLUE)
    stored.paste(RED, (0, 0, 100, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    stored.save(folder / "rotated.jpg", "JPEG", quality=95, exif=exif.tobytes())

    Image.new("RGB", (1, 1), GREEN).save(folder / "tiny.png")
    strip = np.tile(np.linspace(0, 255, 10_000).astype(np.uint8), (8, 1))
    Image.fromarray(strip, "L").save(folder / "wide.png")

    (folder / "folder.jpg").mkdir(exist_ok=True)

    return [
        BadInput("empty.jpg", False, None, "empty"),
        BadInput("notes.png", False, None, "not an image"),
        BadInput("truncated.jpg", False, None, "truncated"),
        BadInput("bomb.png", False, None, "over the limit"),
        BadInput("cmyk.jpg", True, (451, 300), None),
        BadInput("gray16.png", True, (256, 32), None),
        BadInput("palette_transparent.png", True, (64, 32), None),
        BadInput("animated.gif", True, (48, 32), None),
        BadInput("rotated.jpg", True, (100, 200), None),
        BadInput("tiny.png", True, (1, 1), None),
        BadInput("wide.png", True, (10_000, 8), None),
        BadInput("folder.jpg", False, None, "directory"),
    ]
