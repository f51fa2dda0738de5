#!/usr/bin/env bash
# Install the Debian/Ubuntu packages Qt needs, only those missing.
#   system-deps.sh test         libraries for headless (offscreen) Qt
#   system-deps.sh gui          + X11/xcb libraries to show the window
#   system-deps.sh screenshots  + Xvfb to run the real window on a virtual screen
#   system-deps.sh package      + Wayland client libraries (every library the packaged Qt
#                               links must be here: its .deb's Depends are read off them),
#                               desktop-file-validate and appstreamcli
set -euo pipefail
level="${1:-test}"
packages=(libegl1 libgl1 libfontconfig1 libxkbcommon0 libdbus-1-3 libglib2.0-0)
if [[ "$level" == gui || "$level" == screenshots || "$level" == package ]]; then
  packages+=(libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
             libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxcb-randr0 libxcb-xinerama0)
fi
if [[ "$level" == screenshots ]]; then
  packages+=(xvfb xauth fonts-dejavu-core)
fi
if [[ "$level" == package ]]; then
  packages+=(libwayland-client0 libwayland-cursor0 libwayland-egl1 libxcb-util1
             desktop-file-utils appstream dpkg)
fi
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "system-deps: not a Debian-like system; install Qt's runtime libraries yourself" >&2
  exit 0
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "system-deps: installing ${missing[*]}" >&2
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
