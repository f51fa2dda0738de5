#!/bin/sh
# /usr/bin/cnn-desktop: starts the app installed in /opt/cnn-desktop, found relative to this
# script (so an unpacked copy of the .deb works from wherever it lies), from any folder.
here=$(dirname "$(readlink -f "$0")")
exec "$here/../../opt/cnn-desktop/cnn-desktop" "$@"
