"""PyInstaller runtime hook: runs in the packaged app before cnn-desktop itself.

On Linux, before the window opens on X11, it checks that the system libraries Qt's xcb
platform plugin needs are there (the package's build wrote them, with the Debian package
that carries each, to ``qt-system-libraries.json``), so a missing one gives one line naming
the package to install instead of Qt's abort with a core dump. The same for no display at all.
"""

import ctypes
import json
import os
import sys
from pathlib import Path

_NOT_GUI_OPTIONS = {"-h", "--help", "--version", "--smoke-test"}


def _opens_a_window(argv: list[str]) -> bool:
    command = next((a for a in argv if not a.startswith("-")), None)
    return command in (None, "gui") and not _NOT_GUI_OPTIONS.intersection(argv)


def _uses_xcb() -> bool:
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.startswith("xcb")
    return not os.environ.get("WAYLAND_DISPLAY")


def _fail(message: str) -> None:
    print(f"cnn-desktop: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _check_x11() -> None:
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        _fail(
            "no display to open the window on (DISPLAY and WAYLAND_DISPLAY are not set); "
            "use the command line (cnn-desktop classify …) or set QT_QPA_PLATFORM=offscreen"
        )
    listing = Path(getattr(sys, "_MEIPASS", ".")) / "qt-system-libraries.json"
    try:
        needed: dict[str, str] = json.loads(listing.read_text("utf-8"))
    except (OSError, ValueError):
        return
    missing = []
    for soname, package in needed.items():
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append((soname, package))
    if missing:
        names = ", ".join(sorted({package for _, package in missing}))
        _fail(
            f"the window needs {', '.join(s for s, _ in missing)}, which this system lacks; "
            f"install it with: sudo apt install {names}"
        )


if sys.platform.startswith("linux") and _opens_a_window(sys.argv[1:]) and _uses_xcb():
    _check_x11()
