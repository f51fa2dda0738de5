"""Fuzzing ``load_image``: damaged real files of every allowed format give an RGB image or an
``ImageLoadError``, nothing else, and print nothing; plus the smallest inputs the fuzzers
(this test and ``benchmarks/fuzz_images.py``) found that did otherwise, one test each.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from benchmarks.fuzz_inputs import (
    MUTATION_KINDS,
    Mutation,
    Seed,
    apply_mutations,
    random_mutations,
    seed_files,
)
from cnn_desktop.core.imaging import (
    EXTENSIONS_BY_FORMAT,
    ImageLoadError,
    decode_warnings,
    load_image,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# libtiff's own C messages are caught where Pillow loads libtiff as a shared library; its
# Windows wheels link it statically (see cnn_desktop/core/imaging/libtiff_messages.py).
FORMATS_WITH_C_MESSAGES = {"TIFF"} if sys.platform == "win32" else set()

mutation_lists = st.lists(
    st.builds(
        Mutation,
        st.sampled_from(MUTATION_KINDS),
        st.integers(0, 1 << 16),
        st.integers(0, 1 << 20),
    ),
    min_size=1,
    max_size=4,
)


@pytest.fixture(scope="module")
def seeds_by_format() -> dict[str, list[Seed]]:
    found: dict[str, list[Seed]] = {}
    for seed in seed_files():
        found.setdefault(seed.format, []).append(seed)
    return found


def load_reporting_escapes(path: Path) -> tuple[Image.Image | None, list[str]]:
    """``load_image(path)`` (None on ImageLoadError) and the warnings that escaped it."""
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        try:
            image = load_image(path)
        except ImageLoadError as exc:
            message = str(exc)
            assert message and "\n" not in message, repr(message)
            image = None
    return image, [f"{w.category.__name__}: {w.message}" for w in escaped]


@pytest.mark.parametrize("fmt", sorted(EXTENSIONS_BY_FORMAT))
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_damaged_files_of_every_format_load_or_fail_with_an_image_error(
    fmt: str,
    seeds_by_format: dict[str, list[Seed]],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    data: st.DataObject,
) -> None:
    seed = data.draw(st.sampled_from(seeds_by_format[fmt]), label="seed")
    # Edits built by hypothesis (they shrink well) or drawn like the benchmark draws them
    # (positions spread over the whole file, not clustered at its start).
    like_the_benchmark = st.randoms(use_true_random=False).map(
        lambda rng: random_mutations(rng, len(seed.data))
    )
    mutations = data.draw(st.one_of(mutation_lists, like_the_benchmark), label="mutations")
    mutated = apply_mutations(seed, mutations)
    path = tmp_path / f"damaged{Path(seed.name).suffix}"
    path.write_bytes(mutated)
    capfd.readouterr()

    image, escaped = load_reporting_escapes(path)  # anything else raised fails the test

    if image is not None:
        assert image.mode == "RGB" and image.width > 0 and image.height > 0
        recorded = decode_warnings(image)
        assert all(isinstance(text, str) and "\n" not in text for text in recorded)
    assert escaped == []
    printed = capfd.readouterr()
    assert printed.out == ""
    if fmt not in FORMATS_WITH_C_MESSAGES:
        assert printed.err == ""
    assert "Warning" not in printed.err


def test_dds_with_an_unknown_pixel_format_is_an_image_error(tmp_path: Path) -> None:
    # Pillow's DDS plugin raises NotImplementedError for flags it does not know.
    path = tmp_path / "flags.dds"
    path.write_bytes(b"DDS " + struct.pack("<I", 124) + bytes(120))
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(path)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def test_avif_without_an_image_item_is_an_image_error(tmp_path: Path) -> None:
    # libavif's "Missing or empty image item" came out of Pillow as a RuntimeError.
    handler = box(b"hdlr", bytes(8) + b"pict" + bytes(13))
    path = tmp_path / "empty.avif"
    path.write_bytes(box(b"ftyp", b"avif" + bytes(20)) + box(b"meta", bytes(4) + handler))
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(path)


LOW_MEMORY_PROBE = """
import os, resource, sys
from cnn_desktop.core.imaging import ImageLoadError, load_image
with open(f"/proc/{os.getpid()}/statm") as statm:
    in_use = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
limit = in_use + 512 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for path in sys.argv[1:]:
    try:
        load_image(path)
    except ImageLoadError as exc:
        print(exc)
"""


def test_a_header_claiming_gigabytes_needs_no_memory(tmp_path: Path) -> None:
    # Plugins read length fields straight into fp.read(length), which allocates the whole
    # length first: under `ulimit -v` these 50-byte files failed as "not enough memory".
    psd = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 1, 1, 8, 3) + struct.pack(">I", 0xFFFFFFF0)
    jp2_signature = box(b"jP  ", b"\r\n\x87\n")
    jp2 = jp2_signature + box(b"ftyp", b"jp2 " + bytes(4) + b"jp2 ")
    jp2 += struct.pack(">I", 0xFFFFFFF0) + b"jp2h" + bytes(16)
    (tmp_path / "colours.psd").write_bytes(psd)
    (tmp_path / "header.jp2").write_bytes(jp2)
    result = subprocess.run(
        [sys.executable, "-c", LOW_MEMORY_PROBE, "colours.psd", "header.jp2"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["image is truncated or corrupt"] * 2, result.stdout


def jpeg_claiming(tmp_path: Path, width: int, height: int) -> Path:
    """A real 67 × 45 JPEG whose frame header claims ``width`` × ``height``."""
    image = Image.radial_gradient("L").resize((67, 45)).convert("RGB")
    data = io.BytesIO()
    image.save(data, "JPEG", quality=80)
    jpeg = bytearray(data.getvalue())
    frame = jpeg.find(b"\xff\xc0")
    jpeg[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    path = tmp_path / f"claims-{width}x{height}.jpg"
    path.write_bytes(bytes(jpeg))
    return path


def test_a_small_file_claiming_a_huge_image_is_refused_before_decoding(tmp_path: Path) -> None:
    # A 1 KB JPEG claiming 10,000 × 10,000 decoded (grey fill) for seconds into ~800 MB.
    path = jpeg_claiming(tmp_path, 10_000, 10_000)
    with pytest.raises(ImageLoadError, match="claims 10000×10000 pixels but the file has only"):
        load_image(path)
    assert load_image(jpeg_claiming(tmp_path, 400, 300)).size == (400, 300)  # small: decoded


def test_a_large_flat_image_that_compresses_well_still_loads(tmp_path: Path) -> None:
    # 25 megapixels of one grey in a ~25 KB PNG: deflate's best ratio, a real file.
    path = tmp_path / "flat.png"
    Image.new("L", (5000, 5000), 128).save(path, optimize=True)
    assert path.stat().st_size < 40_000
    image = load_image(path)
    assert image.size == (5000, 5000) and image.getpixel((4999, 4999)) == (128, 128, 128)


def tiff_with_an_exif_tag_past_the_end() -> bytes:
    """A 1 × 1 grey TIFF whose EXIF IFD has a tag whose data lies past the end of the file."""

    def entry(tag: int, kind: int, value: int, count: int = 1) -> bytes:
        return struct.pack("<HHII", tag, kind, count, value)

    exif_at = 8 + 2 + 12 * 10 + 4
    pixel_at = exif_at + 2 + 12 + 4
    tags = [(256, 4, 1), (257, 4, 1), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, pixel_at)]
    tags += [(277, 3, 1), (278, 4, 1), (279, 4, 1), (34665, 4, exif_at)]
    ifd = struct.pack("<H", len(tags)) + b"".join(entry(*t) for t in tags) + bytes(4)
    exif = struct.pack("<H", 1) + entry(0x9286, 7, 0xFFFF0, count=1000) + bytes(4)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + exif + b"\x80"


def test_tiff_metadata_warnings_are_attached_not_printed(tmp_path: Path) -> None:
    # Pillow's TIFF load() reads the EXIF IFDs after the pixels, where warnings escaped.
    path = tmp_path / "exif.tif"
    path.write_bytes(tiff_with_an_exif_tag_past_the_end())
    image, escaped = load_reporting_escapes(path)
    assert image is not None and image.size == (1, 1)
    assert escaped == []
    assert any("Tag data larger than file" in text for text in decode_warnings(image))


@pytest.mark.parametrize("mode", ["I;16", "F"])
def test_deep_frames_become_8_bit_without_64_bit_copies_of_the_frame(mode: str) -> None:
    # 16-bit and float frames were stretched in whole-frame int64/float64 arrays: 19 and 45
    # bytes per pixel at the peak, ~2 GB and ~5 GB for a 100-megapixel frame.
    from cnn_desktop.core.imaging.pixels import to_uint8

    ramp = np.arange(2000 * 2000).reshape(2000, 2000)
    values = ramp % 4000 + 100 if mode == "I;16" else ramp / ramp.max() * 10 - 5
    frame = Image.fromarray(values.astype(np.uint16 if mode == "I;16" else np.float32))
    tracemalloc.start()
    try:
        out = to_uint8(frame)
        peak_bytes_per_pixel = tracemalloc.get_traced_memory()[1] / values.size
    finally:
        tracemalloc.stop()
    assert peak_bytes_per_pixel < 12
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
