"""Training as a generator of events: head-only, full fine-tune, or a classic CNN from scratch.

``train(data_dir, out, config)`` yields :class:`TrainEvent` (scan, embedding, step, epoch,
checkpoint, export, done), consumed by the CLI (a progress bar) and the GUI (live curves).
The best model so far is kept; cancelling stops at the next step and saves it; an interrupted
run resumes from its checkpoint; the same seed on the CPU gives the same metrics.

Where the model goes is decided by :mod:`cnn_desktop.core.training.placement`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from cnn_desktop.core.tasks import CancelToken
from cnn_desktop.core.training.config import TrainConfig, TrainEvent
from cnn_desktop.core.training.dataset import scan_folder
from cnn_desktop.core.training.placement import check_output
from cnn_desktop.core.training.splits import make_split


def train(
    data_dir: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    cancel: CancelToken | None = None,
) -> Iterator[TrainEvent]:
    """Train a model on a folder of class sub-folders and save it as a bundle.

    A model already at ``out`` is replaced only by a finished run whose export check passed
    (see the module docstring); the final event's result says where the model went.

    Raises:
        TrainError: Bad options, data or output location (before any training).
        DatasetError: The folder cannot be trained on.
    """
    config = (config or TrainConfig()).resolved()
    out_path = check_output(out)
    started = time.monotonic()
    report = scan_folder(Path(data_dir), cancel=cancel)
    split = make_split(report, config.val_split, config.seed)
    yield TrainEvent("scan", message=report.summary(), data={"report": report, "split": split})
    if config.mode == "head":
        from cnn_desktop.core.training.head import train_head as run
    else:
        from cnn_desktop.core.training.network import train_network as run
    yield from run(report, split, out_path, config, cancel, started)
