"""Render the app icon and installer images from resources/icons/cnn-desktop.svg (`make icons`).

Qt's SVG renderer (PySide6, already in the dev venv) draws the PNGs in the hicolor sizes;
Pillow writes the Windows ``.ico``, the macOS ``.icns`` and the installer bitmaps. The
outputs are committed; run this again after editing the SVG. The window icon's PNGs are
copied into cnn_desktop/resources/icons/, the data the Python package reads at run time.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "resources" / "icons"
INSTALLER = ROOT / "resources" / "installer"
WINDOW_ICONS = ROOT / "cnn_desktop" / "resources" / "icons"
HICOLOR_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
WINDOW_SIZES = (32, 64, 256)
BACKGROUND = (15, 23, 42)  # the icon's dark corner colour


def render(renderer: QSvgRenderer, size: int) -> Image.Image:
    """The SVG drawn at ``size``×``size`` pixels, as an RGBA Pillow image."""
    image = QImage(size, size, QImage.Format.Format_RGBA8888)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    raw = bytes(image.constBits())[: size * image.bytesPerLine()]
    return Image.frombuffer("RGBA", (size, size), raw, "raw", "RGBA", image.bytesPerLine(), 1)


def installer_image(icon: Image.Image, size: tuple[int, int], icon_side: int) -> Image.Image:
    """A dark panel with the icon in its upper part (Inno Setup's wizard images)."""
    panel = Image.new("RGB", size, BACKGROUND)
    scaled = icon.resize((icon_side, icon_side), Image.Resampling.LANCZOS)
    panel.paste(scaled, ((size[0] - icon_side) // 2, (size[0] - icon_side) // 2), scaled)
    return panel


def main() -> None:
    """Write every icon and installer image."""
    _app = QGuiApplication([])
    renderer = QSvgRenderer(str(ICONS / "cnn-desktop.svg"))
    if not renderer.isValid():
        raise SystemExit("resources/icons/cnn-desktop.svg is not a valid SVG")
    pngs = ICONS / "png"
    pngs.mkdir(exist_ok=True)
    rendered = {size: render(renderer, size) for size in (*HICOLOR_SIZES, 1024)}
    for size in HICOLOR_SIZES:
        rendered[size].save(pngs / f"cnn-desktop-{size}.png", optimize=True)
    ico_sizes = [(s, s) for s in (16, 24, 32, 48, 64, 128, 256)]
    rendered[256].save(ICONS / "cnn-desktop.ico", sizes=ico_sizes)
    rendered[1024].save(ICONS / "cnn-desktop.icns")
    WINDOW_ICONS.mkdir(parents=True, exist_ok=True)
    for size in WINDOW_SIZES:
        shutil.copyfile(pngs / f"cnn-desktop-{size}.png", WINDOW_ICONS / f"cnn-desktop-{size}.png")
    INSTALLER.mkdir(exist_ok=True)
    # Inno Setup's wizard images (their sizes at 100 % DPI).
    installer_image(rendered[512], (164, 314), 128).save(INSTALLER / "wizard.bmp")
    installer_image(rendered[512], (55, 55), 55).save(INSTALLER / "wizard-small.bmp")
    print(f"icons written to {ICONS.relative_to(ROOT)} and {WINDOW_ICONS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
