"""Export the built-in model's ONNX bundle for a package (runs in the dev venv: needs torch).

    python packaging/export_model.py OUT_DIR

Builds the bundle into its own cache under build/ (reused while current, like a user's cache)
and copies model.onnx, model.json and weights.safetensors to OUT_DIR, which the spec packs as
``cnn_desktop_models/default.cnnmodel`` (see cnn_desktop/core/models/bundled_model.py).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def main(out: Path) -> None:
    """Build (or reuse) the default bundle and copy it to ``out``."""
    os.environ["CNN_DESKTOP_CACHE_DIR"] = str(out.parent / "model-cache")
    from cnn_desktop.core.models import default_model_bundle, load_bundle

    bundle = default_model_bundle(lambda _f, message: print(message, file=sys.stderr))
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in ("model.onnx", "model.json", "weights.safetensors"):
        shutil.copyfile(bundle.path / name, out / name)
    copy = load_bundle(out)
    print(f"{copy.spec.name}: {sum(f.stat().st_size for f in out.iterdir()) / 1e6:.1f} MB in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
