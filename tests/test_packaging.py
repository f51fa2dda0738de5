"""The packaging's own rules: what the installers offer to open, what the app leaves out of
the bundle, and the version its metadata announces (the builds themselves run in
``make package`` / ``make package-test``)."""

from __future__ import annotations

import configparser
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cnn_desktop import __version__
from cnn_desktop.core.imaging import IMAGE_EXTENSIONS

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "io.github.cnn_desktop.CnnDesktop"
sys.path.insert(0, str(ROOT / "packaging"))

import image_types  # noqa: E402  (packaging/image_types.py)
import prune  # noqa: E402  (packaging/prune.py)


def test_every_image_type_the_app_reads_is_offered_by_the_desktop_entry():
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.optionxform = str
    desktop.read(ROOT / "resources" / f"{APP_ID}.desktop", encoding="utf-8")
    listed = set(filter(None, desktop["Desktop Entry"]["MimeType"].split(";")))

    assert set(image_types.image_extensions()) == {e.lstrip(".") for e in IMAGE_EXTENSIONS}
    assert listed == set(image_types.mime_types())
    assert {"image/jpeg", "image/png", "image/tiff", "image/webp"} <= listed


def test_an_extension_without_a_known_mime_type_stops_the_build(monkeypatch):
    monkeypatch.setattr(image_types, "image_extensions", lambda: ["jpg", "xyz"])

    with pytest.raises(SystemExit, match="no MIME type for xyz"):
        image_types.mime_types()


def test_metainfo_announces_this_version():
    tree = ET.parse(ROOT / "resources" / f"{APP_ID}.metainfo.xml")
    versions = [r.get("version") for r in tree.getroot().iter("release")]

    assert tree.getroot().findtext("id") == APP_ID
    assert versions and versions[0] == __version__, "add a <release> for the new version"


@pytest.mark.parametrize(
    ("dest", "source", "flavour", "left_out"),
    [
        ("PySide6/Qt/plugins/platforms/libqxcb.so", "/venv/PySide6/...", "lite", False),
        ("PySide6/Qt/plugins/platforms/libqwayland.so", "/venv/PySide6/...", "lite", False),
        ("PySide6/Qt/plugins/platforms/libqoffscreen.so", "/venv/PySide6/...", "lite", False),
        ("PySide6/Qt/plugins/platforms/libqeglfs.so", "/venv/PySide6/...", "lite", True),
        ("PySide6/Qt/translations/qtbase_de.qm", "/venv/PySide6/...", "lite", True),
        ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", "/venv/PySide6/...", "lite", True),
        ("libQt6Quick.so.6", "/venv/PySide6/Qt/lib/libQt6Quick.so.6", "lite", True),
        ("onnxruntime/capi/libonnxruntime_providers_tensorrt.so", "/venv/...", "full", True),
        ("onnxruntime/capi/libonnxruntime_providers_cuda.so", "/venv/...", "full", False),
        ("nvidia/cu13/lib/libcublas.so.13", "/venv/nvidia/cu13/lib/...", "full", False),
        ("libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "full", True),
        ("libxcb.so.1", "/lib/x86_64-linux-gnu/libxcb.so.1", "lite", sys.platform == "linux"),
        ("libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.3", "lite", False),
    ],
)
def test_what_the_bundle_leaves_out(dest: str, source: str, flavour: str, left_out: bool):
    assert prune.dropped(dest, source, flavour) is left_out


@pytest.mark.parametrize(
    ("argv", "window"),
    [
        ([], True),
        (["gui", "photo.jpg"], True),
        (["photo.jpg"], False),  # not a command the CLI knows: its own error, no window
        (["classify", "photos/"], False),
        (["--version"], False),
        (["gui", "--help"], False),
        (["gui", "--smoke-test"], False),  # offscreen
    ],
)
def test_runtime_hook_checks_x11_libraries_only_before_a_window(argv: list[str], window: bool):
    import rthook_cnn_desktop  # packaging/rthook_cnn_desktop.py (pytest's argv opens nothing)

    assert rthook_cnn_desktop._opens_a_window(argv) is window


def test_runtime_hook_knows_when_qt_will_use_xcb(monkeypatch):
    import rthook_cnn_desktop

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert rthook_cnn_desktop._uses_xcb()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert not rthook_cnn_desktop._uses_xcb()
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert rthook_cnn_desktop._uses_xcb()
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert not rthook_cnn_desktop._uses_xcb()
