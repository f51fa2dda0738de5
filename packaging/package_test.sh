#!/usr/bin/env bash
# Smoke test of the built artefacts (`make package-test [FLAVOUR=full]`), as a user without
# Python would run them: the tarball unpacked into a folder whose path has a space, and the
# .deb unpacked with dpkg-deb -x into a temporary root (run through its /usr/bin launcher).
# Every command runs under `env -i` with PATH=/usr/bin:/bin, a new HOME and no virtualenv, from
# an unrelated folder, on a read-only install tree (as the user nobody when run as root, so
# that read-only really holds).
set -uo pipefail
flavour="${1:-lite}"
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/packaging/names.sh"
cats='"(tabby|tiger cat|Egyptian cat|Persian cat|Siamese cat)"'
passed=0
failed=0
for artefact in "$tarball" "$deb"; do
  [[ -e "$artefact" ]] || { echo "package-test: $artefact is missing: make package first" >&2; exit 2; }
done

work="$(mktemp -d "/tmp/cnn desktop test.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
chmod 0755 "$work"
as_user=()
if [[ $(id -u) -eq 0 ]]; then as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups --); fi
cp -r "$root/packaging/smoke" "$work/smoke images"
chmod -R a+rX "$work/smoke images"

check() {  # check NAME COMMAND...: one line per check, PASS or FAIL with what it printed
  local name="$1"; shift
  local out
  if out=$("$@" 2>&1); then
    passed=$((passed + 1)); echo "  PASS  $name"
  else
    failed=$((failed + 1)); echo "  FAIL  $name"; echo "$out" | tail -15 | sed 's/^/        /'
  fi
}

bare() {  # bare HOME COMMAND...: run as a user without Python would, from an unrelated folder
  local home="$1"; shift
  (cd "$home" && timeout 600 "${as_user[@]}" env -i PATH=/usr/bin:/bin HOME="$home" LANG=C.UTF-8 "$@")
}

new_home() {
  local home
  home=$(mktemp -d "$work/home.XXXXXX")
  chmod 0755 "$home"
  [[ ${#as_user[@]} -gt 0 ]] && chown 65534:65534 "$home"
  echo "$home"
}

expect_version() { bare "$(new_home)" "$1" --version | tee /dev/stderr | grep -qx "cnn-desktop $version"; }

classify_cat() {  # the cat photo's top-1 class is a cat (FILE: chelsea.jpg by default)
  local out
  out=$(bare "$2" "$1" classify "$work/smoke images/${3:-chelsea.jpg}" --format json --top-k 3) \
    || return 1
  echo "$out"
  echo "$out" | grep -o '"label": "[^"]*"' | sed -n 1p | grep -Eq "$cats"
}

classify_heic_and_avif() {  # the formats phones and browsers write, decoded inside the bundle
  classify_cat "$1" "$(new_home)" chelsea.heic && classify_cat "$1" "$(new_home)" chelsea.avif
}

two_at_once() {  # two copies classify at once with the same fresh HOME: both succeed
  local home; home=$(new_home)
  classify_cat "$1" "$home" >"$work/one.out" 2>&1 &
  local first=$!
  classify_cat "$1" "$home" >"$work/two.out" 2>&1 &
  local second=$!
  local ok=0
  wait "$first" || ok=1
  wait "$second" || ok=1
  cat "$work/one.out" "$work/two.out"
  return $ok
}

providers() {  # (f) the ONNX Runtime providers that work, printed; the CPU one must
  local out
  out=$(bare "$(new_home)" "$1" info) || { echo "$out"; return 1; }
  echo "$out" | grep -E "ExecutionProvider +working" | awk '{print $1}' >"$work/providers"
  grep -qx "CPUExecutionProvider" "$work/providers"
}

train_and_classify() {  # (d) a head-mode model trained on a tiny folder, then used
  local home; home=$(new_home)
  bare "$home" "$1" train "$work/smoke images/train" --out "$home/pets.cnnmodel" --mode head \
    --quiet || return 1
  local out
  out=$(bare "$home" "$1" classify "$work/smoke images/coffee.jpg" --model "$home/pets.cnnmodel" \
    --format json --top-k 1) || { echo "$out"; return 1; }
  echo "$out"
  echo "$out" | grep -q '"label": "coffee"'
}

torch_refused_in_lite() {  # lite has no torch: full training is refused in one line, exit 2
  local home err rc; home=$(new_home)
  err=$(bare "$home" "$1" train "$work/smoke images/train" --out "$home/never" \
    --mode full 2>&1 >/dev/null); rc=$?
  echo "exit $rc: $err"
  [[ $rc -eq 2 && $(echo "$err" | wc -l) -eq 1 && "$err" == *"full training needs PyTorch"* ]]
}

no_display_one_line() {  # the window without any display: one line naming the problem, exit 2
  local err rc
  err=$(bare "$(new_home)" "$1" 2>&1 >/dev/null); rc=$?
  echo "exit $rc: $err"
  [[ $rc -eq 2 && $(echo "$err" | wc -l) -eq 1 && "$err" == "cnn-desktop: error: "* ]]
}

missing_library_one_line() {  # a system library the window needs is missing: one line naming
  # the Debian package, no Qt abort. Simulated on a writable copy whose list names one more.
  local copy="$work/copy with missing library" err rc
  rm -rf "$copy" && cp -a "$1" "$copy" && chmod -R u+w "$copy"
  sed -i 's|^{|{"libcnn-desktop-test-missing.so.0": "libcnn-desktop-test0",|' \
    "$copy/_internal/qt-system-libraries.json"
  err=$(bare "$(new_home)" DISPLAY=:77 "$copy/cnn-desktop" 2>&1 >/dev/null); rc=$?
  rm -rf "$copy"
  echo "exit $rc: $err"
  [[ $rc -eq 2 && $(echo "$err" | wc -l) -eq 1 && "$err" == *"sudo apt install libcnn-desktop-test0"* ]]
}

libraries_resolve() {  # (e) ldd over every bundled ELF file finds every library (torch/lib
  # too: torchvision's operators find libtorch because torch is always imported first)
  local app_dir="$1" missing
  missing=$(find "$app_dir" -type f \( -name "*.so*" -o -perm -u+x \) -print0 \
    | xargs -0 -n 50 env LD_LIBRARY_PATH="$app_dir/_internal:$app_dir/_internal/torch/lib" ldd \
    2>/dev/null \
    | grep "not found" | sort -u)
  [[ "$flavour" == full ]] && missing=$(echo "$missing" | grep -v -E "libcuda\.so|libnvidia-" || true)
  [[ -z "$missing" ]] || { echo "$missing"; return 1; }
}

run_checks() {  # run_checks LABEL EXECUTABLE APP_DIR
  local label="$1" exe="$2" app_dir="$3"
  echo "package-test[$flavour]: $label ($exe)"
  check "(a) --version says $version" expect_version "$exe"
  check "(b) the cat photo is classified as a cat" classify_cat "$exe" "$(new_home)"
  check "(b) the same photo as HEIC (iPhone) and AVIF: a cat" classify_heic_and_avif "$exe"
  check "(c) gui --smoke-test: window, classify, feature maps, CAM" \
    bare "$(new_home)" "$exe" gui --smoke-test "$work/smoke images/chelsea.jpg"
  check "(d) head-mode training on a tiny folder, then classify with it" train_and_classify "$exe"
  if [[ "$flavour" == lite ]]; then
    check "lite: full training refused in one line, exit 2" torch_refused_in_lite "$exe"
  fi
  check "(e) ldd finds every library of every bundled ELF file" libraries_resolve "$app_dir"
  check "(f) ONNX Runtime providers that work (CPU at least)" providers "$exe"
  echo "        working: $(tr '\n' ' ' <"$work/providers" 2>/dev/null)"
  check "two copies at once, fresh HOME: both classify" two_at_once "$exe"
  check "no display: one line, exit 2" no_display_one_line "$exe"
  check "missing X11 library: one line naming its package, exit 2" \
    missing_library_one_line "$app_dir"
}

tar_root="$work/tar root"
mkdir -p "$tar_root" && tar -xzf "$tarball" -C "$tar_root"
deb_root="$work/deb root"
dpkg-deb -x "$deb" "$deb_root"
chmod -R a-w "$tar_root" "$deb_root"
run_checks "tarball $(basename "$tarball")" "$tar_root/cnn-desktop/cnn-desktop" "$tar_root/cnn-desktop"
run_checks "deb $(basename "$deb")" "$deb_root/usr/bin/cnn-desktop" "$deb_root/opt/cnn-desktop"
echo "package-test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
