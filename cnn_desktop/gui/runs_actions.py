"""What the Runs view's buttons do beyond the table: delete runs (asking first, the models only
when asked), and repeat a run in the Train tab, where its progress, cancel and curves are
those of any training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QCheckBox, QMessageBox, QWidget

from cnn_desktop.core.models import BundleError
from cnn_desktop.core.runs import (
    RunStore,
    RunStoreError,
    config_from_record,
    delete_run_bundle,
    rerun_output,
)
from cnn_desktop.core.training import TrainError

if TYPE_CHECKING:
    from cnn_desktop.gui.runner import TaskHandle
    from cnn_desktop.gui.train_panel import TrainPanel

Yes, No = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No


def ask_delete(parent: QWidget, records: Sequence[dict[str, Any]]) -> bool | None:
    """Ask whether to delete ``records``; a box (off by default) also deletes their models.

    Returns:
        None: keep them; False: delete the records only; True: the records and their models.
    """
    names = ", ".join(str(r.get("id")) for r in records[:3]) + (" …" if len(records) > 3 else "")
    bundles = [str(r["bundle"]) for r in records if r.get("bundle")]
    box = QMessageBox(
        QMessageBox.Icon.Question,
        "Delete runs?" if len(records) > 1 else "Delete the run?",
        f"Delete the record of {len(records)} run(s) ({names})?\n\n"
        "The models they saved are kept unless you tick the box below.",
        Yes | No,
        parent,
    )
    box.setDefaultButton(No)
    check = QCheckBox(
        f"Also delete the model{'s' if len(bundles) > 1 else ''} "
        + (bundles[0] if len(bundles) == 1 else f"({len(bundles)} folders)"),
        box,
    )
    check.setEnabled(bool(bundles))
    box.setCheckBox(check)
    if box.exec() != Yes:
        return None
    return check.isChecked() and bool(bundles)


@dataclass
class Deleted:
    """What a deletion did: the runs and models removed, and why others were not."""

    runs: list[str] = field(default_factory=list)
    bundles: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def delete_runs(root: Path, records: Sequence[dict[str, Any]], with_bundles: bool) -> Deleted:
    """Delete the records (and their model bundles when ``with_bundles``) from the store at
    ``root``; a run whose model cannot be deleted keeps its record too (the job)."""
    store, done = RunStore(root), Deleted()
    for record in records:
        try:
            removed = delete_run_bundle(record) if with_bundles else None
            store.delete(str(record["id"]))
        except (BundleError, RunStoreError, OSError) as exc:
            done.problems.append(f"run {record.get('id')} is not deleted: {exc}")
            continue
        done.runs.append(str(record["id"]))
        if removed:
            done.bundles.append(removed)
    return done


def start_rerun(panel: TrainPanel, record: dict[str, Any]) -> TaskHandle | None:
    """Repeat ``record`` in the Train tab: same config, seed and data (refused there, with the
    data's changes named, when the data changed). None: it could not start (said why)."""
    folder = (record.get("data") or {}).get("folder")
    if panel.handle is not None:
        panel.error.emit("A training is running: re-run the run once it has ended.")
        return None
    if not folder:
        panel.error.emit(f"Run {record['id']} records no data folder: it cannot be re-run.")
        return None
    try:
        config = config_from_record(record).resolved()
    except (TrainError, TypeError, ValueError) as exc:
        panel.error.emit(f"Run {record['id']}'s config cannot be used: {exc}")
        return None
    if panel.folder_edit.text() != folder:
        panel.set_data_folder(folder)  # the Train tab shows the data the re-run trains on
    out = rerun_output(record)
    handle = panel.train(folder, out, config, rerun=record)
    panel.run_view.set_status(f"Re-running run {record['id']} into {out}…")
    panel.message.emit(f"Re-running run {record['id']} into {out}")
    return handle
