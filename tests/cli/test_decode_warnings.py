"""Quiet stderr: decoder warnings travel with their file's result; progress is plain lines."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from skimage import data

from tests.cli.test_cli import run_cli

APNG_WARNING = "Invalid APNG, will use default PNG image if possible"


@pytest.fixture(scope="module", autouse=True)
def _model_cached(default_bundle) -> None:
    """Build the default model into the shared test cache once, before any subprocess runs."""


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def write_png_that_makes_pillow_warn(path: Path) -> None:
    """A cat PNG with an animation-control chunk claiming 0 frames: Pillow warns
    "Invalid APNG" while opening it, then decodes the still image normally."""
    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, "PNG")
    png = buffer.getvalue()
    end_of_ihdr = 8 + 8 + 13 + 4
    path.write_bytes(png[:end_of_ihdr] + png_chunk(b"acTL", bytes(8)) + png[end_of_ihdr:])


def test_the_file_really_makes_pillow_warn(tmp_path: Path) -> None:
    write_png_that_makes_pillow_warn(tmp_path / "odd.png")
    with pytest.warns(UserWarning, match="Invalid APNG"), Image.open(tmp_path / "odd.png") as im:
        im.load()


def test_decoder_warning_is_attached_to_the_result_not_printed(tmp_path: Path) -> None:
    write_png_that_makes_pillow_warn(tmp_path / "odd.png")
    Image.fromarray(data.chelsea()).save(tmp_path / "plain.png")
    run = run_cli("classify", "--format", "json", tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Invalid APNG" not in run.stderr and "Warning" not in run.stderr, run.stderr
    records = {Path(r["path"]).name: r for r in map(json.loads, run.stdout.splitlines())}
    assert records["odd.png"]["warnings"] == [APNG_WARNING]
    assert (
        records["odd.png"]["predictions"][0]["label"]
        == records["plain.png"]["predictions"][0]["label"]
    )
    assert "warnings" not in records["plain.png"]

    table = run_cli("classify", tmp_path / "odd.png")
    assert "warning:" not in table.stdout
    verbose = run_cli("classify", "--verbose", tmp_path / "odd.png")
    assert f"    warning: {APNG_WARNING}" in verbose.stdout.splitlines()
    assert "Invalid APNG" not in verbose.stderr


def test_progress_on_a_pipe_is_whole_lines_without_carriage_returns(tmp_path: Path) -> None:
    for i in range(6):
        Image.fromarray(data.chelsea()).resize((100, 75)).save(tmp_path / f"cat{i}.jpg")
    run = run_cli("classify", "--format", "json", tmp_path)  # stderr is a pipe, not a terminal
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr
    assert "Classifying: 6/6 img" in run.stderr.splitlines()
