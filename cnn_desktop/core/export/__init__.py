"""Taking a model away: a verified float copy, or a static INT8 version with a parity report."""

from cnn_desktop.core.export.exporter import (
    ExportResult,
    check_export_output,
    export_model,
    is_int8,
)
from cnn_desktop.core.export.images import ExportError
from cnn_desktop.core.export.parity import QUANTIZATION_FILE, report_lines

__all__ = [
    "QUANTIZATION_FILE",
    "ExportError",
    "ExportResult",
    "check_export_output",
    "export_model",
    "is_int8",
    "report_lines",
]
