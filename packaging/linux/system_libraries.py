"""Which system libraries a packaged app needs, from ``ldd`` over every ELF file in it.

    python3 system_libraries.py APP_DIR [--depends-out FILE] [--xcb-out FILE] [--ignore SONAME]

``ldd`` runs as the bundle's launcher runs the app (its ``_internal`` folder on
LD_LIBRARY_PATH, and ``torch/lib`` where there is one: torchvision's operator libraries carry
no usable rpath and find libtorch because torch is always imported first). Every library it
resolves outside the bundle is mapped to the Debian package that owns it (``dpkg -S``); a
library it cannot find at all is reported and makes the exit code 1 (the ``--ignore``d ones
aside: the driver's ``libcuda``). Outputs:

- ``--depends-out``: the .deb's ``Depends:`` value (each package also accepts its
  ``t64``-renamed successor, as on Ubuntu 24.04 and Debian 13);
- ``--xcb-out``: JSON ``{soname: package}`` of what Qt's xcb platform plugin needs from the
  system; the runtime hook checks these before opening the window (one clear line, no abort).

Standard library only: it runs under the system Python or any venv.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(not found|\S+)")
XCB_PLUGIN = "libqxcb.so"


def elf_files(root: Path) -> list[Path]:
    """Every regular ELF file under ``root`` (shared libraries, extension modules, programs)."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def ldd(path: Path, library_path: str) -> dict[str, str | None]:
    """soname → resolved path (None: not found) of ``path``'s dependencies."""
    env = {**os.environ, "LD_LIBRARY_PATH": library_path}
    result = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env)
    deps: dict[str, str | None] = {}
    for line in result.stdout.splitlines():
        match = _LDD_LINE.match(line)
        if match:
            deps[match.group(1)] = None if match.group(2) == "not found" else match.group(2)
    return deps


def owning_packages(paths: set[str]) -> dict[str, str]:
    """system path → Debian package (``dpkg -S``), trying the /usr-merged twin of each path."""
    candidates: dict[str, str] = {}
    for path in paths:
        real = os.path.realpath(path)
        for variant in {path, real, *(_usr_twin(p) for p in (path, real))}:
            candidates[variant] = path
    result = subprocess.run(
        ["dpkg", "-S", *sorted(candidates)], capture_output=True, text=True, check=False
    )
    owners: dict[str, str] = {}
    for line in result.stdout.splitlines():
        package, _, owned = line.partition(": ")
        if owned in candidates and "," not in package:
            owners.setdefault(candidates[owned], package.split(":")[0])
    return owners


def _usr_twin(path: str) -> str:
    return path[4:] if path.startswith("/usr/") else "/usr" + path


def depends_field(packages: set[str]) -> str:
    """The ``Depends:`` value; each package also satisfied by its t64 successor."""
    parts = []
    for package in sorted(packages):
        if package.endswith("t64"):
            parts.append(f"{package} | {package[:-3]}")
        elif package.startswith("lib") and re.search(r"\d", package):
            parts.append(f"{package} | {package}t64")
        else:
            parts.append(package)
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Scan the app folder, print what is missing, write the requested outputs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app_dir", type=Path)
    parser.add_argument("--depends-out", type=Path)
    parser.add_argument("--xcb-out", type=Path)
    parser.add_argument("--ignore", action="append", default=[], help="soname prefix to ignore")
    args = parser.parse_args(argv)
    root = args.app_dir.resolve()
    internal = root / "_internal" if (root / "_internal").is_dir() else root
    library_path = os.pathsep.join(str(p) for p in (internal, internal / "torch" / "lib"))
    system: set[str] = set()
    xcb_system: dict[str, str] = {}
    missing: dict[str, list[str]] = {}
    files = elf_files(root)
    for path in files:
        for soname, resolved in ldd(path, library_path).items():
            if resolved is None:
                if not any(soname.startswith(prefix) for prefix in args.ignore):
                    missing.setdefault(soname, []).append(str(path.relative_to(root)))
            elif not os.path.realpath(resolved).startswith(str(root) + os.sep):
                system.add(resolved)
                if path.name == XCB_PLUGIN:
                    xcb_system[soname] = resolved
    owners = owning_packages(system)
    unowned = sorted(system - set(owners))
    print(
        f"{len(files)} ELF files, {len(system)} system libraries from {len(set(owners.values()))}"
        f" packages",
        file=sys.stderr,
    )
    for soname, users in sorted(missing.items()):
        print(f"not found: {soname} (needed by {', '.join(users[:3])})", file=sys.stderr)
    for path in unowned:
        print(f"no Debian package owns {path}", file=sys.stderr)
    if args.depends_out:
        args.depends_out.write_text(depends_field(set(owners.values())) + "\n", "utf-8")
    if args.xcb_out:
        needed = {s: owners.get(p, s) for s, p in sorted(xcb_system.items())}
        args.xcb_out.write_text(json.dumps(needed, indent=1) + "\n", "utf-8")
    return 1 if missing or (args.depends_out and unowned) else 0


if __name__ == "__main__":
    sys.exit(main())
