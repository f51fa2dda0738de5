#!/usr/bin/env bash
# The Linux artefacts of a built app (called by packaging/build.sh):
#   dist/cnn-desktop[-full]-VERSION-linux-ARCH.tar.gz   one top folder cnn-desktop/
#   dist/cnn-desktop[-full]_VERSION_ARCH.deb            /opt/cnn-desktop, /usr/bin launcher,
#       desktop entry (MimeType= from the image types the app reads), hicolor icons, AppStream
#       metainfo; Depends: read off ldd (build/linux-FLAVOUR/depends.txt)
#   make_artefacts.sh lite|full PYTHON     (PYTHON imports cnn_desktop: image types)
set -euo pipefail
flavour="$1"
python="$2"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
source packaging/names.sh
app_id="io.github.cnn_desktop.CnnDesktop"
work="build/linux-$flavour"
metainfo="resources/$app_id.metainfo.xml"
grep -q "<release version=\"$version\"" "$metainfo" || {
  echo "make_artefacts: $metainfo has no <release version=\"$version\">: add the release" >&2
  exit 1; }

# The tarball: cnn-desktop/ with the executable at its top.
stage="$work/tar"
rm -rf "$stage" && mkdir -p "$stage"
cp -a "$app_dir" "$stage/cnn-desktop"
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner -cf - cnn-desktop \
  | gzip -6 >"$tarball.part"
mv "$tarball.part" "$tarball"

# The .deb.
deb_root="$work/deb"
rm -rf "$deb_root"
mkdir -p "$deb_root"/{DEBIAN,opt,usr/bin,usr/share/applications,usr/share/metainfo} \
  "$deb_root/usr/share/doc/$deb_package" "$deb_root/usr/share/icons/hicolor/scalable/apps"
mv "$stage/cnn-desktop" "$deb_root/opt/cnn-desktop"
install -m 0755 packaging/linux/launcher.sh "$deb_root/usr/bin/cnn-desktop"
mime=$(PYTHONPATH="$root" "$python" packaging/image_types.py mime)
sed "s|^MimeType=.*|MimeType=$mime|" "resources/$app_id.desktop" \
  >"$deb_root/usr/share/applications/$app_id.desktop"
desktop-file-validate "$deb_root/usr/share/applications/$app_id.desktop"
install -m 0644 "$metainfo" "$deb_root/usr/share/metainfo/"
appstreamcli validate --no-net --pedantic "$metainfo" >/dev/null || appstreamcli validate --no-net "$metainfo"
install -m 0644 resources/icons/cnn-desktop.svg "$deb_root/usr/share/icons/hicolor/scalable/apps/$app_id.svg"
for png in resources/icons/png/cnn-desktop-*.png; do
  size=$(basename "$png" .png); size=${size#cnn-desktop-}
  install -D -m 0644 "$png" "$deb_root/usr/share/icons/hicolor/${size}x${size}/apps/$app_id.png"
done
cat >"$deb_root/usr/share/doc/$deb_package/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: cnn-desktop
License: Apache-2.0
Comment: The built-in model is EfficientNet-Lite0 (ImageNet-1k), Apache-2.0. The bundled
 Python, Qt (LGPL-3.0), ONNX Runtime (MIT), NumPy, Pillow and the other libraries keep their
 own licenses; their notices are in /opt/cnn-desktop/_internal.
COPYRIGHT
if [[ "$flavour" == full ]]; then
  relations=$'Provides: cnn-desktop\nConflicts: cnn-desktop\nReplaces: cnn-desktop'
  summary="with PyTorch and CUDA: training on the GPU, Grad-CAM"
else
  relations=$'Conflicts: cnn-desktop-full'
  summary="lite: ONNX Runtime on the CPU, no PyTorch"
fi
cat >"$deb_root/DEBIAN/control" <<CONTROL
Package: $deb_package
Version: $version
Architecture: $deb_arch
Maintainer: cnn-desktop developers <noreply@cnn-desktop.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)
Depends: $(cat "$work/depends.txt")
$relations
Section: science
Priority: optional
Description: image classification with convolutional neural networks ($summary)
 Drop images or folders on the window and see what a CNN thinks they are, how sure
 it is, and which regions drove its answer (feature maps, class-activation maps).
 Classify whole folders from the command line, fine-tune a model on your own images
 and export it as ONNX. Everything runs locally; the built-in EfficientNet-Lite0
 model ships inside the package.
CONTROL
find "$deb_root" -type d -exec chmod 0755 {} +
# xz keeps the lite .deb small; the full one (GBs) takes gzip, xz would take a quarter hour.
compression=$([[ "$flavour" == full ]] && echo "-Zgzip -z6" || echo "-Zxz -z6")
dpkg-deb --root-owner-group $compression --build "$deb_root" "$deb.part" >/dev/null
mv "$deb.part" "$deb"
rm -rf "$stage"
