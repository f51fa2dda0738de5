"""libtiff's error and warning messages, collected per file instead of written to stderr.

Pillow decodes compressed TIFF files with libtiff, whose default handlers write straight to
file descriptor 2 from C ("ZIPDecode: Decoding error at scanline 0, incorrect data check."),
one line per damaged strip: a folder of odd TIFFs fills the terminal. :func:`install` replaces
both handlers, once per process, with one that hands each message to the thread decoding the
file: inside :func:`collecting_libtiff_messages` it goes to that block's list, which travels
with the file's result (or its error); anywhere else it goes to this module's logger.

The handlers are set in the libtiff that Pillow loaded (found among the process's shared
libraries on Linux and macOS). Where Pillow links libtiff statically (Windows wheels) there is
nothing to hook and messages keep libtiff's own behaviour; :func:`install` then returns False.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_log = logging.getLogger(__name__)
_MESSAGE_LIMIT = 300
_MESSAGES_PER_FILE = 20

# void handler(const char *module, const char *fmt, va_list ap): va_list arrives as a pointer
# on x86-64 and arm64 (an array or a by-reference struct), which vsnprintf takes back as is.
_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)

_local = threading.local()
_install_lock = threading.Lock()
_installed: bool | None = None
_keep_alive: list[object] = []
_vsnprintf = ctypes.CDLL(None).vsnprintf if sys.platform != "win32" else None
if _vsnprintf is not None:
    _vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]


def _find_libtiff() -> str | None:
    """The path of the libtiff shared library already loaded by Pillow, if there is one."""
    import PIL._imaging  # noqa: F401  (loads libtiff with it)

    if sys.platform.startswith("linux"):
        try:
            maps = Path("/proc/self/maps").read_text(errors="replace")
        except OSError:
            return None
        for line in maps.splitlines():
            path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
            if "/libtiff" in path and ".so" in path:
                return path
        return None
    if sys.platform == "darwin":
        libc = ctypes.CDLL(None)
        libc._dyld_image_count.restype = ctypes.c_uint32
        libc._dyld_get_image_name.restype = ctypes.c_char_p
        libc._dyld_get_image_name.argtypes = [ctypes.c_uint32]
        for index in range(libc._dyld_image_count()):
            name = (libc._dyld_get_image_name(index) or b"").decode(errors="replace")
            if "/libtiff" in name:
                return name
    return None


def _format(fmt: bytes | None, arguments: int | None) -> str:
    buffer = ctypes.create_string_buffer(1024)
    _vsnprintf(buffer, len(buffer), fmt or b"", arguments)
    return buffer.value.decode("utf-8", errors="replace")


def _handle(module: bytes | None, fmt: bytes | None, arguments: int | None) -> None:
    try:
        text = _format(fmt, arguments)
        if module:
            text = f"{module.decode('utf-8', errors='replace')}: {text}"
        text = " ".join(text.split())[:_MESSAGE_LIMIT]
        sink: list[str] | None = getattr(_local, "sink", None)
        if sink is None:
            _log.info("libtiff: %s", text)
        elif text and text not in sink and len(sink) < _MESSAGES_PER_FILE:
            sink.append(text)
    except Exception:  # A callback from C must never raise.
        _log.debug("could not record a libtiff message", exc_info=True)


def install() -> bool:
    """Route libtiff's messages through this module (once per process; thread-safe).

    Returns:
        Whether libtiff's handlers are now this module's.
    """
    global _installed
    if _installed is not None:
        return _installed
    with _install_lock:
        if _installed is None:
            _installed = False
            path = _find_libtiff()
            if path is not None and _vsnprintf is not None:
                try:
                    libtiff = ctypes.CDLL(path)
                    handler = _HANDLER_TYPE(_handle)
                    for setter in (libtiff.TIFFSetErrorHandler, libtiff.TIFFSetWarningHandler):
                        setter.restype = ctypes.c_void_p
                        setter.argtypes = [_HANDLER_TYPE]
                        setter(handler)
                    _keep_alive.extend((libtiff, handler))
                    _installed = True
                except (OSError, AttributeError) as exc:
                    _log.info("libtiff messages stay on stderr: %s", exc)
    return _installed


@contextmanager
def collecting_libtiff_messages(sink: list[str]) -> Iterator[None]:
    """Append every libtiff message this thread causes inside the block to ``sink``."""
    install()
    outer = getattr(_local, "sink", None)
    _local.sink = sink
    try:
        yield
    finally:
        _local.sink = outer
