"""Embedded colour profiles: converted to sRGB before the model or the screen sees a pixel."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms
from skimage import data

from cnn_desktop.core.imaging import decode_warnings, load_image

# Adobe RGB (1998) primaries adapted to the D50 PCS, as in Adobe's own profile.
ADOBE_RGB_COLORANTS = {
    b"rXYZ": (0.60974, 0.31111, 0.01947),
    b"gXYZ": (0.20528, 0.62567, 0.06087),
    b"bXYZ": (0.14919, 0.06322, 0.74457),
}
D50 = (0.9642, 1.0, 0.8249)


def _s15f16(values: tuple[float, ...]) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def matrix_trc_profile(description: str, colorants: dict[bytes, tuple], gamma: float) -> bytes:
    """A minimal ICC v2 RGB display profile (primaries + one gamma curve), built by hand.

    ``ImageCms.createProfile`` only makes sRGB, LAB and XYZ, so a wide-gamut profile
    ("Adobe-RGB-like": Adobe RGB primaries, gamma 2.2) is written from the ICC spec's
    matrix/TRC model: a header, a tag table, desc/wtpt/colorant/curve tags.
    """
    text = description.encode("ascii") + b"\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 12 + b"\0" * 67
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags = [(b"desc", desc), (b"wtpt", b"XYZ \0\0\0\0" + _s15f16(D50))]
    tags += [(sig, b"XYZ \0\0\0\0" + _s15f16(xyz)) for sig, xyz in colorants.items()]
    tags += [(sig, curve) for sig in (b"rTRC", b"gTRC", b"bTRC")]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, payload in tags:
        payload += b"\0" * (-len(payload) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(payload))
        body += payload
    size = offset + len(body)
    header = struct.pack(">I4sI4s4s4s", size, b"\0" * 4, 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    header += struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 24
    header += struct.pack(">I", 0) + _s15f16(D50)
    header += b"\0" * (128 - len(header))
    return header + table + body


ADOBE_LIKE = matrix_trc_profile("Adobe-RGB-like test profile", ADOBE_RGB_COLORANTS, 2.2)


def photo() -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((128, 128))


def in_adobe_like(image: Image.Image) -> Image.Image:
    """sRGB pixels re-expressed in the Adobe-RGB-like space (what a camera would store)."""
    srgb = ImageCms.createProfile("sRGB")
    adobe = ImageCms.ImageCmsProfile(io.BytesIO(ADOBE_LIKE))
    return ImageCms.profileToProfile(image, srgb, adobe, outputMode="RGB")


def _difference(a: Image.Image, b: Image.Image) -> np.ndarray:
    return np.abs(np.asarray(a).astype(float) - np.asarray(b).astype(float))


def test_the_hand_built_profile_is_wide_gamut_rgb() -> None:
    profile = ImageCms.ImageCmsProfile(io.BytesIO(ADOBE_LIKE))
    assert profile.profile.xcolor_space.strip() == "RGB"
    original = photo()
    difference = _difference(in_adobe_like(original), original)
    assert difference.mean() > 3 and np.percentile(difference, 99) > 15  # really not sRGB


def test_adobe_rgb_like_png_and_jpeg_are_converted_back_to_srgb(tmp_path: Path) -> None:
    original = photo()
    stored = in_adobe_like(original)
    stored.save(tmp_path / "wide.png", icc_profile=ADOBE_LIKE)
    stored.save(tmp_path / "wide.jpg", icc_profile=ADOBE_LIKE, quality=95, subsampling=0)
    png = load_image(tmp_path / "wide.png")
    assert png.mode == "RGB" and decode_warnings(png) == ()
    assert _difference(png, original).mean() <= 1.0
    assert np.percentile(_difference(png, original), 99) <= 4
    jpeg = load_image(tmp_path / "wide.jpg")
    with Image.open(tmp_path / "wide.jpg") as raw:  # the stored values, not converted
        unconverted = _difference(raw.convert("RGB"), original).mean()
    assert _difference(jpeg, original).mean() <= min(3.0, unconverted - 1.5)


def test_srgb_profile_leaves_pixels_as_they_are(tmp_path: Path) -> None:
    original = photo()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    original.save(tmp_path / "srgb.png", icc_profile=srgb)
    assert _difference(load_image(tmp_path / "srgb.png"), original).max() <= 1


def test_broken_profile_gives_a_warning_and_still_loads(tmp_path: Path) -> None:
    original = photo()
    original.save(tmp_path / "broken.png", icc_profile=b"not a colour profile" * 8)
    loaded = load_image(tmp_path / "broken.png")
    assert _difference(loaded, original).max() == 0
    (warning,) = decode_warnings(loaded)
    assert warning.startswith("colour profile ignored")


def test_cmyk_jpeg_is_not_broken_by_a_mismatched_profile(tmp_path: Path) -> None:
    cmyk = photo().convert("CMYK")
    cmyk.save(tmp_path / "cmyk.jpg", icc_profile=ADOBE_LIKE)  # an RGB profile on CMYK data
    loaded = load_image(tmp_path / "cmyk.jpg")
    assert loaded.mode == "RGB"
    assert "colour profile ignored" in " ".join(decode_warnings(loaded))
