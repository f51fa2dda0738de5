# Sourced by packaging/build.sh and packaging/package_test.sh: the one place artefact names are
# made. Needs $flavour (lite|full) and $root; sets version, app_name, tarball, deb.
# The version comes from cnn_desktop/__init__.py, the one place it is defined.
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/cnn_desktop/__init__.py")
[[ -n "$version" ]] || { echo "names.sh: no __version__ in cnn_desktop/__init__.py" >&2; exit 1; }
case "$flavour" in
  lite) suffix="" ;;
  full) suffix="-full" ;;
  *) echo "FLAVOUR must be lite or full, not '$flavour'" >&2; exit 2 ;;
esac
deb_package="cnn-desktop$suffix"
app_dir="$root/build/pyinstaller-$flavour/dist/cnn-desktop"
tarball="$root/dist/cnn-desktop$suffix-$version-linux-$(uname -m).tar.gz"
deb_arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
deb="$root/dist/${deb_package}_${version}_${deb_arch}.deb"
