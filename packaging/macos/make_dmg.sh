#!/usr/bin/env bash
# macOS: the .dmg of a built app (cannot run on Linux; used by .github/workflows/release.yml).
#   packaging/build.sh lite DEV_PYTHON_OR_--prebuilt-model   # makes build/.../cnn-desktop.app
#   packaging/macos/make_dmg.sh lite
# gives dist/cnn-desktop-VERSION-macos-ARCH.dmg: the app next to a link to /Applications, to
# drag it onto. The app is not signed: the first start needs right-click → Open.
set -euo pipefail
flavour="${1:-lite}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
source packaging/names.sh
app="build/pyinstaller-$flavour/dist/cnn-desktop.app"
[[ -d "$app" ]] || { echo "make_dmg: $app is missing: run packaging/build.sh first" >&2; exit 1; }
stage="build/dmg-$flavour"
rm -rf "$stage" && mkdir -p "$stage" dist
cp -R "$app" "$stage/"
ln -s /Applications "$stage/Applications"
dmg="dist/cnn-desktop$suffix-$version-macos-$(uname -m).dmg"
hdiutil create -volname "cnn-desktop $version" -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$dmg"
rm -rf "$stage"
echo "$dmg"
