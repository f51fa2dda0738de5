"""Every format on the allow-list, written as a real file, loads and a cat stays a cat."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from cnn_desktop.core.imaging import (
    EXTENSIONS_BY_FORMAT,
    IMAGE_EXTENSIONS,
    ImageLoadError,
    load_image,
    skip_reason,
    summarize_skipped,
)
from cnn_desktop.core.inference import classify_paths

CATS = {"tabby", "tiger cat", "Egyptian cat"}
REPO_ROOT = Path(__file__).resolve().parents[2]


def chelsea() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea())


def write_psd(image: Image.Image, path: Path) -> None:
    """A minimal RGB PSD: header, empty sections, raw planar composite (Pillow cannot write PSD)."""
    width, height = image.size
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    planes = b"".join(band.tobytes() for band in image.split())
    path.write_bytes(header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + planes)


def write_heic(image: Image.Image, path: Path) -> None:
    import pillow_heif

    pillow_heif.from_pillow(image).save(str(path), quality=90)


def write_with_pillow(fmt: str, **options: object):
    def write(image: Image.Image, path: Path) -> None:
        image.save(path, format=fmt, **options)

    return write


def write_icns(image: Image.Image, path: Path) -> None:
    image.resize((512, 512)).save(path, format="ICNS")


WRITERS = {
    "photo.heic": write_heic,
    "photo.avif": write_with_pillow("AVIF", quality=90),
    "photo.jp2": write_with_pillow("JPEG2000"),
    "photo.tga": write_with_pillow("TGA"),
    "photo.psd": write_psd,
    "photo.qoi": write_with_pillow("QOI"),
    "photo.pcx": write_with_pillow("PCX"),
    "photo.sgi": write_with_pillow("SGI"),
    "photo.dds": write_with_pillow("DDS"),
    "photo.icns": write_icns,
}


@pytest.fixture(scope="module")
def format_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    assert features.check("avif") and features.check("jpg_2000")  # this Pillow build writes both
    folder = tmp_path_factory.mktemp("formats")
    image = chelsea()
    files = {}
    for name, write in WRITERS.items():
        write(image, folder / name)
        files[name] = folder / name
    return files


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_each_format_loads_as_the_same_picture(format_files: dict[str, Path], name: str) -> None:
    loaded = load_image(format_files[name])
    reference = chelsea()
    if name.endswith(".icns"):  # an icon of square sizes; the largest is read
        reference = reference.resize(loaded.size)
    assert loaded.mode == "RGB" and loaded.size == reference.size
    difference = np.abs(np.asarray(loaded, np.int16) - np.asarray(reference, np.int16))
    assert difference.mean() < 6  # lossy codecs differ a little, never a different picture


def test_a_cat_stays_a_cat_in_every_format(format_files: dict[str, Path], onnx_classifier) -> None:
    results = list(classify_paths(list(format_files.values()), onnx_classifier, top_k=1))
    outcome = {r.path.name: (r.error or r.predictions[0].label) for r in results}
    assert all(label in CATS for label in outcome.values()), outcome
    assert len(outcome) == len(WRITERS)


def test_every_allowed_format_has_its_suffixes_listed() -> None:
    for name in WRITERS:
        assert skip_reason(Path(name)) is None and Path(name).suffix in IMAGE_EXTENSIONS
    assert {"HEIF", "AVIF", "JPEG2000", "TGA", "PSD", "QOI", "PCX", "SGI", "DDS", "ICNS"} <= set(
        EXTENSIONS_BY_FORMAT
    )


def test_heif_opener_is_registered_only_when_a_heic_file_is_met(
    format_files: dict[str, Path],
) -> None:
    probe = (
        "import sys\n"
        "from cnn_desktop.core.imaging import load_image\n"
        "load_image(sys.argv[1])\n"
        "print('pillow_heif' in sys.modules)\n"
        "load_image(sys.argv[2])\n"
        "print('pillow_heif' in sys.modules)\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            str(format_files["photo.qoi"]),
            str(format_files["photo.heic"]),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    ).stdout.split()
    assert out == ["False", "True"]


def test_tga_is_not_guessed_for_files_without_its_suffix(tmp_path: Path) -> None:
    chelsea().save(tmp_path / "photo.tga", format="TGA")
    (tmp_path / "photo.bin").write_bytes((tmp_path / "photo.tga").read_bytes())
    assert load_image(tmp_path / "photo.tga").size == (451, 300)
    with pytest.raises(ImageLoadError):  # TGA has no signature: never guessed
        load_image(tmp_path / "photo.bin")


def test_refused_formats_give_their_reason(tmp_path: Path) -> None:
    assert skip_reason(Path("drawing.eps")) == "EPS needs an external interpreter (Ghostscript)"
    assert skip_reason(Path("notes.txt")) == "not an image type (.txt)"
    assert skip_reason(Path("README")) == "not an image type (no extension)"
    (tmp_path / "drawing.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
    with pytest.raises(ImageLoadError, match="EPS needs an external interpreter"):
        load_image(tmp_path / "drawing.eps")


def test_skipped_summary_counts_by_suffix() -> None:
    skipped = [(Path(f"n{i}.txt"), "x") for i in range(10)] + [(Path("a.eps"), "y")] * 2
    assert summarize_skipped(skipped) == "12 files skipped: 10 .txt, 2 .eps"
    assert summarize_skipped([(Path("README"), "x")]) == "1 file skipped: 1 no extension"
    assert summarize_skipped([]) == ""
