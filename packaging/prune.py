"""What the PyInstaller spec leaves out of the packaged app, and why (imported by the spec).

PyInstaller collects every Qt plugin of every imported Qt module, every Qt translation and
whatever shared library those pull in. The app uses Qt Widgets on xcb, Wayland, offscreen
(tests) or the native platform of Windows/macOS, reads images through Pillow (Qt's image
plugins only paint icons) and is English only, so the rest goes. Patterns are matched against
the destination path inside the bundle, with forward slashes.
"""

from __future__ import annotations

import fnmatch
import sys

# Python modules of PySide6 the app never imports (pyqtgraph imports some optionally).
EXCLUDED_QT_MODULES = [
    f"PySide6.{name}"
    for name in (
        "QtQml",
        "QtQuick",
        "QtQuickControls2",
        "QtQuickWidgets",
        "QtQuickTest",
        "QtWebEngineCore",
        "QtWebEngineWidgets",
        "QtDesigner",
        "QtHelp",
        "QtUiTools",
        "QtSql",
        "QtTest",
        "QtXml",
        "QtConcurrent",
        "QtNetwork",
        "QtDBus",
        "QtPrintSupport",
        "QtMultimedia",
        "QtPdf",
        "Qt3DCore",
        # pyqtgraph imports these optionally (SVG export, OpenGL views): 10 MB unused.
        "QtSvg",
        "QtOpenGL",
        "QtOpenGLWidgets",
    )
]

_QT = "*PySide6/Qt/"
DROPPED = [
    # Translations of Qt's own dialogs: the app installs no translator.
    f"{_QT}translations/*",
    # Platforms for embedded boards and remote screens; keep xcb, wayland, offscreen, minimal
    # (and windows/cocoa on their systems).
    f"{_QT}plugins/platforms/*eglfs*",
    f"{_QT}plugins/platforms/*linuxfb*",
    f"{_QT}plugins/platforms/*minimalegl*",
    f"{_QT}plugins/platforms/*vkkhrdisplay*",
    f"{_QT}plugins/platforms/*vnc*",
    f"{_QT}plugins/egldeviceintegrations/*",
    f"{_QT}plugins/generic/*",  # touch/evdev input for eglfs
    # GTK 3 theme: would make GTK 3 a dependency; the XDG portal theme stays.
    f"{_QT}plugins/platformthemes/*gtk3*",
    # QML, Designer, SQL, printing, TLS and network status: never used.
    f"{_QT}plugins/qmltooling/*",
    f"{_QT}plugins/qmllint/*",
    f"{_QT}plugins/designer/*",
    f"{_QT}plugins/sqldrivers/*",
    f"{_QT}plugins/printsupport/*",
    f"{_QT}plugins/tls/*",
    f"{_QT}plugins/networkinformation/*",
    f"{_QT}plugins/wayland-graphics-integration-server/*",
    "*libQt6EglF*",  # EglFS device integration and its KMS support
    "*libQt6Network*",
    f"{_QT}qml/*",
    "*libQt6Qml*",
    "*libQt6Quick*",
    "*libQt6Pdf*",
    "*libQt6WebEngine*",
    "*libQt6VirtualKeyboard*",
    "*libQt6Designer*",
    # TensorRT provider of onnxruntime-gpu (needs TensorRT, several hundred MB, unused).
    "onnxruntime/capi/*tensorrt*",
    # Tests and test data shipped inside packages.
    "*/tests/*",
    "*/testing/_private/*",
    "onnx/backend/test/*",
]
DROPPED_FULL_ONLY: list[str] = [
    # The driver brings libcuda; a bundled copy would not match the user's kernel module.
    "*libcuda.so*",
    "*nvcuda.dll",
    "triton/*",
]
DROPPED_LITE_ONLY: list[str] = []

# Linux: the desktop's own libraries (X11/xcb, Wayland, GL, fontconfig, GLib, D-Bus, the C
# and C++ runtimes ...) come from the user's system, where they match its display server and
# drivers; the .deb depends on them (packaging/linux/system_libraries.py lists them from ldd).
# Bundled copies would be loaded first (the launcher puts the bundle on LD_LIBRARY_PATH) and
# could clash with the system's. Only what the Python interpreter itself was built against,
# whose versions differ between distributions, stays in the bundle.
SYSTEM_LIBRARY_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/")
KEPT_SYSTEM_LIBRARIES = ["libssl.so*", "libcrypto.so*", "libffi.so*", "libsqlite3.so*", "libmpdec*"]


def dropped(dest: str, source: str, flavour: str) -> bool:
    """Whether the file ``source``, at ``dest`` inside the bundle, is left out of ``flavour``."""
    path = dest.replace("\\", "/")
    patterns = DROPPED + (DROPPED_FULL_ONLY if flavour == "full" else DROPPED_LITE_ONLY)
    if any(fnmatch.fnmatch(path, pattern) for pattern in patterns):
        return True
    if sys.platform.startswith("linux") and str(source).startswith(SYSTEM_LIBRARY_DIRS):
        name = path.rsplit("/", 1)[-1]
        return not any(fnmatch.fnmatch(name, pattern) for pattern in KEPT_SYSTEM_LIBRARIES)
    return False


def keep(toc: list, flavour: str) -> list:
    """The TOC entries (``dest, source, typecode``) of ``toc`` that ``flavour`` keeps."""
    return [entry for entry in toc if not dropped(entry[0], entry[1] or "", flavour)]
