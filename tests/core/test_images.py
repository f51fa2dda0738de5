"""Safe image loading: awkward real files, fast JPEG drafts, limits, refusals, folder scans."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import EpsImagePlugin, Image, ImageFile
from skimage import data

from cnn_desktop.core.imaging.loading import (
    ALLOWED_FORMATS,
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    ImageLoadError,
    collect_image_paths,
    is_image_path,
    load_image,
)
from tests.bad_inputs import BadInput, write_bad_input_corpus
from tests.unprivileged import run_unprivileged, running_as_root, shared_folder

Corpus = tuple[Path, dict[str, BadInput]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, {entry.name: entry for entry in write_bad_input_corpus(folder)}


def pixels(path: Path) -> np.ndarray:
    return np.asarray(load_image(path)).astype(int)


# --- the awkward-input corpus -------------------------------------------------------------


CORPUS_NAMES = [
    "empty.jpg",
    "notes.png",
    "truncated.jpg",
    "bomb.png",
    "cmyk.jpg",
    "gray16.png",
    "palette_transparent.png",
    "animated.gif",
    "rotated.jpg",
    "tiny.png",
    "wide.png",
    "folder.jpg",
]


def test_corpus_lists_every_file_it_writes(corpus: Corpus) -> None:
    folder, entries = corpus
    assert sorted(entries) == sorted(CORPUS_NAMES)
    assert sorted(p.name for p in folder.iterdir()) == sorted(CORPUS_NAMES)


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_corpus_entry_has_its_documented_outcome(corpus: Corpus, name: str) -> None:
    folder, entries = corpus
    entry = entries[name]
    if entry.loads:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            image = load_image(folder / name)
        assert image.mode == "RGB"
        assert image.size == entry.expected_size
        image.resize((4, 4)).load()  # usable after the file is closed
    else:
        with pytest.raises(ImageLoadError) as caught:
            load_image(folder / name)
        message = str(caught.value)
        assert entry.error_contains in message.lower()
        assert "\n" not in message and "Traceback" not in message


def test_transparent_palette_area_comes_out_white(corpus: Corpus) -> None:
    folder, _ = corpus
    rgb = pixels(folder / "palette_transparent.png")
    assert (rgb[:, :32] == 255).all()  # transparent (black underneath) -> white
    assert (rgb[:, 32:] == [255, 0, 0]).all()


def test_16_bit_gradient_spans_black_to_white_smoothly(corpus: Corpus) -> None:
    folder, _ = corpus
    rgb = pixels(folder / "gray16.png")
    row = rgb[0, :, 0]
    assert (rgb == rgb[..., :1]).all()  # grey stays grey
    assert row[0] == 0 and row[-1] == 255  # 65535 -> 255, not clipped or wrapped
    assert (np.diff(row) >= 0).all()  # monotonic: no wrap-around garbage
    assert abs(row[128] - 128) <= 1
    assert len(np.unique(row)) > 200  # uses the whole 8-bit range, not a few levels


def test_exif_rotated_photo_is_upright(corpus: Corpus) -> None:
    folder, _ = corpus
    rgb = pixels(folder / "rotated.jpg")
    assert rgb.shape == (200, 100, 3)
    top, bottom = rgb[10:90].mean(axis=(0, 1)), rgb[110:190].mean(axis=(0, 1))
    assert top[0] > 200 and top[2] < 50  # the stored left (red) half is on top
    assert bottom[2] > 200 and bottom[0] < 50


def test_animated_gif_gives_its_first_frame(corpus: Corpus) -> None:
    folder, _ = corpus
    assert (pixels(folder / "animated.gif") == [255, 0, 0]).all()


def test_cmyk_photo_keeps_natural_colours(corpus: Corpus) -> None:
    folder, _ = corpus
    rgb = pixels(folder / "cmyk.jpg")
    original = data.chelsea().astype(int)
    assert np.abs(rgb - original).mean() < 10  # not inverted, not channel-swapped
    red, _, blue = rgb.reshape(-1, 3).mean(axis=0)
    assert red > blue + 30  # a ginger cat stays warm


def test_tiny_and_wide_images_keep_their_pixels(corpus: Corpus) -> None:
    folder, _ = corpus
    assert pixels(folder / "tiny.png").tolist() == [[[0, 255, 0]]]
    wide = pixels(folder / "wide.png")
    assert wide[0, 0].tolist() == [0, 0, 0] and wide[0, -1].tolist() == [255, 255, 255]


# --- modes ---------------------------------------------------------------------------------


def test_semi_transparent_rgba_is_composited_on_white(tmp_path: Path) -> None:
    Image.new("RGBA", (4, 4), (0, 0, 0, 128)).save(tmp_path / "half.png")
    assert (np.abs(pixels(tmp_path / "half.png") - 127) <= 1).all()


def test_16_bit_pgm_and_float_images_scale_to_8_bit(tmp_path: Path) -> None:
    (tmp_path / "deep.pgm").write_bytes(b"P5\n3 1\n65535\n\x00\x00\x80\x00\xff\xff")
    assert pixels(tmp_path / "deep.pgm")[0, :, 0].tolist() == [0, 128, 255]
    floats = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    Image.fromarray(floats, "F").save(tmp_path / "float.tif")
    assert pixels(tmp_path / "float.tif")[0, :, 0].tolist() == [0, 128, 255]


@pytest.mark.parametrize(
    "suffix", [".jpg", ".png", ".gif", ".bmp", ".tif", ".webp", ".ppm", ".pgm", ".ico", ".mpo"]
)
def test_every_allowed_format_loads(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"photo{suffix}"
    photo = Image.fromarray(data.chelsea()).resize((48, 48))  # ICO wants squares
    photo.save(path, save_all=True, append_images=[photo]) if suffix == ".mpo" else photo.save(path)
    with Image.open(path) as check:
        assert check.format in ALLOWED_FORMATS
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (48, 48)


def test_multi_page_tiff_gives_its_first_page(tmp_path: Path) -> None:
    pages = [Image.new("RGB", (8, 8), colour) for colour in ((0, 0, 255), (255, 0, 0))]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    assert (pixels(tmp_path / "pages.tif") == [0, 0, 255]).all()


# --- fast JPEG draft decoding --------------------------------------------------------------


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    Image.fromarray(data.chelsea()).resize((4000, 3000)).save(path, quality=85)
    return path


def test_min_side_decodes_a_large_jpeg_at_reduced_size(big_jpeg: Path) -> None:
    image = load_image(big_jpeg, min_side=256)
    assert image.mode == "RGB"
    assert 256 <= min(image.size) < 3000 // 2
    assert image.size[0] / image.size[1] == pytest.approx(4 / 3, rel=0.01)


def test_without_min_side_a_jpeg_loads_at_full_size(big_jpeg: Path) -> None:
    assert load_image(big_jpeg).size == (4000, 3000)
    assert load_image(big_jpeg, min_side=2000).size == (4000, 3000)  # no smaller scale fits


def test_draft_then_exif_rotation_keeps_the_shorter_side(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (4000, 3000), (200, 30, 30)).save(tmp_path / "p.jpg", exif=exif.tobytes())
    width, height = load_image(tmp_path / "p.jpg", min_side=300).size
    assert width < height and 300 <= width < 1500


def test_min_side_does_not_shrink_other_formats(tmp_path: Path) -> None:
    Image.new("RGB", (1200, 900)).save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png", min_side=100).size == (1200, 900)


# --- size limits -----------------------------------------------------------------------------


def test_pixel_limit_is_checked_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.new("RGB", (64, 64)).save(tmp_path / "small.png")

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("decoded despite the limit")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageLoadError, match=r"64×64 = 4,096 pixels, over the limit of 1,000"):
        load_image(tmp_path / "small.png", max_pixels=1000)


def test_default_limit_refuses_a_header_bomb_quickly(corpus: Corpus) -> None:
    folder, _ = corpus
    assert MAX_PIXELS == 120_000_000
    with pytest.raises(ImageLoadError, match=r"50000×50000 = 2,500,000,000 pixels"):
        load_image(folder / "bomb.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "GIF"])
def test_pillow_bomb_warning_never_escapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # Pillow's own limit lowered below the image: we own the limit, so it loads, silently.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (40, 40), (10, 200, 10)).save(tmp_path / "p", fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(tmp_path / "p").size == (40, 40)


def test_pillow_bomb_error_becomes_image_load_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (100, 100)).save(tmp_path / "p.tif")  # TIFF checks again when decoding
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(tmp_path / "p.tif")


# --- refused and unreadable files ----------------------------------------------------------

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto showpage\n"


@pytest.mark.parametrize("name", ["drawing.eps", "drawing.jpg"])
def test_eps_is_refused_without_asking_the_eps_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    def never(self: object) -> None:
        raise AssertionError("the EPS plugin was asked to open the file")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", never)
    (tmp_path / name).write_bytes(EPS)
    with pytest.raises(ImageLoadError, match="unsupported image format EPS"):
        load_image(tmp_path / name)


def test_pdf_is_refused(tmp_path: Path) -> None:
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n")
    with pytest.raises(ImageLoadError, match="unsupported image format PDF"):
        load_image(tmp_path / "scan.pdf")


def test_formats_pillow_reads_but_we_do_not_are_refused(tmp_path: Path) -> None:
    Image.new("F", (8, 8)).save(tmp_path / "old.spi", format="SPIDER")
    with Image.open(tmp_path / "old.spi") as check:
        assert check.format == "SPIDER" and "SPIDER" not in ALLOWED_FORMATS
    with pytest.raises(ImageLoadError, match="not an image file"):
        load_image(tmp_path / "old.spi")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "gone.jpg")


UNREADABLE_PROBE = """
import json, sys
from pathlib import Path
from cnn_desktop.core.imaging.loading import ImageLoadError, load_image
outcome = {}
for name in sys.argv[1:]:
    try:
        outcome[name] = list(load_image(Path(name)).size)
    except ImageLoadError as exc:
        outcome[name] = str(exc)
print(json.dumps(outcome))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="mode 0 does not stop reads on Windows")
def test_unreadable_file(tmp_path: Path) -> None:
    """A file the user may not read gives 'permission denied', not a crash: as root (who
    reads anything) the check runs as an ordinary user, against the system's real refusal."""
    if not running_as_root():
        path = tmp_path / "secret.png"
        Image.new("RGB", (4, 4)).save(path)
        path.chmod(0)
        with pytest.raises(ImageLoadError, match="permission denied"):
            load_image(path)
        return
    with shared_folder() as folder:
        secret, readable = folder / "secret.png", folder / "readable.png"
        Image.new("RGB", (4, 4)).save(secret)
        Image.new("RGB", (6, 5)).save(readable)
        secret.chmod(0)
        readable.chmod(0o644)
        done = run_unprivileged(UNREADABLE_PROBE, str(secret), str(readable))
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout)
    assert outcome[str(readable)] == [6, 5], "the unprivileged user can read an ordinary file"
    assert "permission denied" in outcome[str(secret)], outcome
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_file_handles_are_closed(corpus: Corpus) -> None:
    folder, entries = corpus
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        for name in entries:
            with contextlib.suppress(ImageLoadError):
                load_image(folder / name)
    assert len(os.listdir("/proc/self/fd")) == before


# --- finding images ------------------------------------------------------------------------


def test_is_image_path() -> None:
    assert is_image_path(Path("cat.JPG")) and is_image_path(Path("a/b/scan.tiff"))
    assert not is_image_path(Path("notes.txt")) and not is_image_path(Path(".cat.jpg"))
    assert {".jpg", ".png", ".webp", ".pgm"} <= IMAGE_EXTENSIONS


def make_tree(root: Path) -> None:
    for relative in [
        "b.jpg",
        "A.png",
        "notes.txt",
        ".hidden.jpg",
        ".cache/x.jpg",
        "sub/c.JPEG",
        "sub/deeper/d.webp",
        "x.jpg/inner.png",
    ]:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_folders_are_walked_recursively_in_a_fixed_order(tmp_path: Path) -> None:
    make_tree(tmp_path)
    found, problems, skipped = collect_image_paths([tmp_path])
    expected = ["A.png", "b.jpg", "sub/c.JPEG", "sub/deeper/d.webp", "x.jpg/inner.png"]
    assert found == [tmp_path / relative for relative in expected]
    assert problems == []
    assert skipped == [(tmp_path / "notes.txt", "not an image type (.txt)")]
    assert collect_image_paths([str(tmp_path)]) == (found, [], skipped)


def test_explicit_files_are_kept_and_missing_ones_reported(tmp_path: Path) -> None:
    make_tree(tmp_path)
    odd, hidden, missing = tmp_path / "notes.txt", tmp_path / ".hidden.jpg", tmp_path / "no.jpg"
    found, problems, skipped = collect_image_paths([odd, missing, hidden, tmp_path / "sub", odd])
    assert found == [odd, hidden, tmp_path / "sub/c.JPEG", tmp_path / "sub/deeper/d.webp"]
    assert problems == [(missing, "file not found")]
    assert skipped == []


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges")
def test_symlinked_folders_are_followed_without_looping(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "more").mkdir(parents=True)
    (outside / "more" / "e.png").write_bytes(b"")
    root = tmp_path / "root"
    make_tree(root)
    (root / "link").symlink_to(outside)
    (root / "sub" / "deeper" / "loop").symlink_to(root)
    (root / "alias").symlink_to(root / "sub")  # sorts before "sub"
    found, problems, skipped = collect_image_paths([root])
    assert root / "link/more/e.png" in found
    assert root / "sub/c.JPEG" in found  # reported by its real path, not "alias/c.JPEG"
    assert len(found) == len(set(found)) == 6
    assert problems == []
    assert skipped == [(root / "notes.txt", "not an image type (.txt)")]


# --- property: any small image in a common mode loads as RGB -------------------------------

MODES = ["L", "RGB", "RGBA", "P", "I;16", "1"]


@st.composite
def small_images(draw: st.DrawFn) -> Image.Image:
    mode = draw(st.sampled_from(MODES))
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    dtype = np.uint16 if mode == "I;16" else np.uint8
    shape = (height, width, channels) if channels else (height, width)
    array = draw(hnp.arrays(dtype, shape))
    if mode == "1":
        return Image.fromarray(array > 127)
    if mode == "P":
        return Image.fromarray(array, "L").convert("P")
    return Image.fromarray(array)


def expected_rgb(image: Image.Image) -> np.ndarray:
    if image.mode == "RGBA":
        rgba = np.asarray(image).astype(float)
        alpha = rgba[..., 3:] / 255
        return rgba[..., :3] * alpha + 255 * (1 - alpha)
    if image.mode == "I;16":  # Stretched from the range used (min → 0, max → 255).
        values = np.asarray(image).astype(float)
        low, high = values.min(), values.max()
        grey = (values - low) * 255 / (high - low) if high > low else values * 255 / 65535
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB")).astype(float)


@settings(max_examples=60, deadline=None)
@given(image=small_images())
def test_any_small_png_loads_as_rgb_with_its_pixels(
    image: Image.Image, tmp_path_factory: pytest.TempPathFactory
) -> None:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    path = tmp_path_factory.getbasetemp() / "property.png"
    path.write_bytes(buffer.getvalue())
    loaded = load_image(path)
    assert loaded.mode == "RGB"
    assert loaded.size == image.size
    assert np.abs(np.asarray(loaded).astype(float) - expected_rgb(image)).max() <= 1.0
