"""cnn-desktop: classify, explain, fine-tune and export convolutional neural networks."""

import os as _os

__version__ = "0.1.0"

# Everything runs locally: ONNX Runtime (1.29 and later) would otherwise send usage telemetry
# and, where it cannot save its device ID (a read-only home), warn about it on stderr. It
# reads this when it is first imported, which is always after this package.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
