"""Decoder warnings collected per file instead of printed on stderr.

Pillow reports damaged but readable files with ``warnings.warn`` (a corrupt EXIF block, a TIFF
tag past the end of the file, an invalid APNG). :func:`recording_warnings` catches them
around the parts of a decode that raise them, so they travel with that file's result; they
never reach stderr raw. The block holds the one warnings lock
(:mod:`cnn_desktop.core.imaging.warnings_lock`), so it wraps only the quick steps (header,
EXIF, colour conversion), never the pixel decode itself, which runs in parallel.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from cnn_desktop.core.imaging.warnings_lock import WARNINGS_LOCK

DECODE_WARNINGS_KEY = "cnn_desktop.decode_warnings"
"""Key in a loaded image's ``info`` holding its decoder warnings (a tuple of str)."""

# Pillow's own debug chatter (TIFF tags, PNG chunks) stays out of the application's logs.
logging.getLogger("PIL").setLevel(logging.INFO)


@contextmanager
def recording_warnings(sink: list[str]) -> Iterator[None]:
    """Append the text of every warning raised inside the block to ``sink``, printing none.

    Pillow's DecompressionBombWarning is dropped: the loader checks sizes itself.
    """
    with WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        finally:
            for item in caught:
                text = " ".join(str(item.message).split())[:300]
                if text and text not in sink:
                    sink.append(text)


def decode_warnings(image: Image.Image) -> tuple[str, ...]:
    """The warnings recorded while ``image`` was loaded by ``load_image`` (empty if none)."""
    found = image.info.get(DECODE_WARNINGS_KEY, ())
    return tuple(found) if isinstance(found, tuple) else ()
