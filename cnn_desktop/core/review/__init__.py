"""Label review of a class-folder dataset: suspected label errors (confident learning on
out-of-fold predictions), duplicates and outliers; moving files between class folders with
undo and a log. numpy and ONNX Runtime only: no torch."""

from cnn_desktop.core.review.moves import (
    MOVES_LOG,
    Move,
    MoveError,
    move_to_class,
    pending_moves,
    read_log,
    undo_last_move,
)
from cnn_desktop.core.review.review import (
    DUPLICATE_SIMILARITY,
    KINDS,
    Finding,
    ReviewReport,
    review_folder,
)

__all__ = [
    "DUPLICATE_SIMILARITY",
    "KINDS",
    "MOVES_LOG",
    "Finding",
    "Move",
    "MoveError",
    "ReviewReport",
    "move_to_class",
    "pending_moves",
    "read_log",
    "review_folder",
    "undo_last_move",
]
