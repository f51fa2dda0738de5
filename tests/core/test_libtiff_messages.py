"""libtiff's messages from C never reach stderr: they travel with the file's result or error."""

from __future__ import annotations

import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_desktop.core.imaging import ImageLoadError, decode_warnings, load_image
from cnn_desktop.core.imaging.libtiff_messages import install

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="Pillow links libtiff statically into its Windows wheels"
)


def _photo() -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _tiff_bytes(compression: str) -> bytes:
    buffer = io.BytesIO()
    _photo().save(buffer, "TIFF", compression=compression)
    return buffer.getvalue()


def _damaged_deflate_tiff(path: Path) -> Path:
    """A deflate TIFF whose strip fails zlib's check: libtiff reports it from C."""
    data = bytearray(_tiff_bytes("tiff_deflate"))
    with Image.open(io.BytesIO(bytes(data))) as image:
        start, length = image.tag_v2[273][0], image.tag_v2[279][0]
    end = start + length
    data[end - 4 : end] = bytes(255 - b for b in data[end - 4 : end])
    path.write_bytes(bytes(data))
    return path


def _readable_tiff_with_libtiff_warning(path: Path) -> tuple[Path, tuple[str, ...]]:
    """A JPEG-in-TIFF with one strip byte changed that still decodes, with a libtiff warning.

    Searched deterministically over the strip's bytes, so no libjpeg version fixes the offset.
    """
    data = _tiff_bytes("jpeg")
    with Image.open(io.BytesIO(data)) as image:
        start, length = image.tag_v2[273][0], image.tag_v2[279][0]
    for position in range(start, start + length):
        for value in (0xFF, 0x00):
            mutated = bytearray(data)
            mutated[position] = value
            path.write_bytes(bytes(mutated))
            try:
                warnings = decode_warnings(load_image(path))
            except ImageLoadError:
                continue
            if any(text.startswith("JPEGLib:") for text in warnings):
                return path, warnings
    raise AssertionError("no single-byte change gave a readable TIFF with a libtiff warning")


def test_handlers_are_installed_in_pillows_libtiff() -> None:
    assert install() is True


def test_decode_error_names_libtiffs_reason_and_stderr_stays_empty(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _damaged_deflate_tiff(tmp_path / "damaged.tif")
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert "ZIPDecode" in str(caught.value)
    assert "truncated or corrupt" in str(caught.value)
    assert capfd.readouterr().err == ""


def test_readable_file_keeps_libtiffs_warning_with_its_result(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _, warnings = _readable_tiff_with_libtiff_warning(tmp_path / "odd.tif")
    assert capfd.readouterr().err == ""
    assert all(len(text) <= 300 for text in warnings)


def test_messages_go_to_the_thread_that_decoded_the_file(tmp_path: Path) -> None:
    damaged = _damaged_deflate_tiff(tmp_path / "damaged.tif")
    clean = tmp_path / "clean.tif"
    clean.write_bytes(_tiff_bytes("tiff_deflate"))

    def outcome(path: Path) -> str:
        try:
            return "ok " + " | ".join(decode_warnings(load_image(path)))
        except ImageLoadError as exc:
            return f"error {exc}"

    paths = [damaged, clean] * 20
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(outcome, paths))
    for path, text in zip(paths, outcomes, strict=True):
        if path == clean:
            assert text == "ok ", text
        else:
            assert text.startswith("error ") and "ZIPDecode" in text, text


def test_cli_prints_no_raw_libtiff_line(tmp_path: Path) -> None:
    folder = tmp_path / "tiffs"
    folder.mkdir()
    for index in range(5):
        _damaged_deflate_tiff(folder / f"damaged-{index}.tif")
    result = subprocess.run(
        [sys.executable, "-m", "cnn_desktop", "classify", str(folder), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert "ZIPDecode" not in result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 5 and all("ZIPDecode" in line for line in lines)
