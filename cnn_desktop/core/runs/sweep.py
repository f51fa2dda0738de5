"""Hyperparameter sweeps: Optuna's TPE sampler proposes configs, each trial is a recorded run
(tagged with the sweep and its trial number), the median pruner stops trials whose validation
accuracy falls behind, and the best model is kept at the sweep's output path.

The first trial of a new study is the defaults, so the sweep's best is never worse than the
defaults on validation. With a shared ``storage`` (an Optuna database URL, or a journal file
that several processes or machines can reach) the processes work on one study, ``trials``
counts the study's trials in all, and whichever process finishes the best trial puts its
model in place, under a lock, so the output is always the study's best so far. An interrupted
sweep keeps its finished trials (in the storage and the run store) and the best model so far.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnn_desktop.core.imaging.files import folder_lock
from cnn_desktop.core.models.bundle import BundleError, place_bundle
from cnn_desktop.core.models.target import bundle_path
from cnn_desktop.core.runs.recorder import recorded_train
from cnn_desktop.core.runs.store import RunStore, RunStoreError
from cnn_desktop.core.tasks import Cancelled, CancelToken
from cnn_desktop.core.training import TrainConfig, TrainError, TrainEvent, parse_augmentations

SWEEPABLE = ("lr", "epochs", "batch_size", "augment", "patience")
DEFAULT_PARAMS = ("lr", "epochs", "batch_size", "augment")
AUGMENT_CHOICES = ("none", "crop", "rotate,crop", "flip,crop", "rotate,crop,color")
BATCH_CHOICES = (8, 16, 32, 64, 128)
EventCallback = Callable[[int, TrainEvent], None]


class SweepError(ValueError):
    """A sweep cannot start (bad parameters, storage or output); the message says why."""


@dataclass
class TrialOutcome:
    """One trial of the study, as the summary shows it."""

    number: int
    state: str  # complete | pruned | failed | running
    params: dict[str, Any]
    value: float | None
    run_id: str | None
    error: str | None = None


@dataclass
class SweepResult:
    """The study's trials (all processes'), its best and where the best model is."""

    study: str
    trials: list[TrialOutcome]
    best: TrialOutcome | None
    out: Path
    interrupted: bool = False
    space: dict[str, Any] = field(default_factory=dict)


def parse_params(text: str | None) -> tuple[str, ...]:
    """``"lr,epochs"`` → ``("lr", "epochs")``; None → :data:`DEFAULT_PARAMS`.

    Raises:
        SweepError: A name that cannot be swept.
    """
    if text is None:
        return DEFAULT_PARAMS
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in SWEEPABLE]
    if unknown or not names:
        raise SweepError(
            f"cannot sweep {', '.join(unknown) or 'nothing'} (choose from {', '.join(SWEEPABLE)})"
        )
    return names


def search_space(base: TrainConfig, params: Sequence[str]) -> dict[str, Any]:
    """The range of each swept parameter, built around the mode's defaults ``base``."""
    augment_default = ",".join(base.augment or ()) or "none"
    space: dict[str, Any] = {
        "lr": {"low": base.lr / 10, "high": min(1.0, base.lr * 10), "log": True},
        "epochs": {"low": max(1, base.epochs // 2), "high": base.epochs * 2},
        "batch_size": {"choices": sorted({*BATCH_CHOICES, base.batch_size})},
        "augment": {"choices": list(dict.fromkeys([augment_default, *AUGMENT_CHOICES]))},
        "patience": {"low": max(1, base.patience // 3), "high": base.patience * 2},
    }
    return {name: space[name] for name in params}


def run_sweep(
    data_dir: str | Path,
    out: str | Path,
    base: TrainConfig,
    trials: int,
    params: Sequence[str] = DEFAULT_PARAMS,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    store: RunStore | None = None,
    tracking_uri: str | None = None,
    on_event: EventCallback | None = None,
    cancel: CancelToken | None = None,
) -> SweepResult:
    """Run the sweep until the study has ``trials`` finished trials (or it is cancelled).

    Raises:
        SweepError: Optuna is missing, ``trials`` is below 1, or the storage cannot be opened.
    """
    optuna = _optuna()
    if trials < 1:
        raise SweepError("--trials must be at least 1")
    base = base.resolved()
    target = bundle_path(out)
    name = study_name or f"{Path(data_dir).resolve().name}-{base.mode}-{base.arch}"
    space = search_space(base, params)
    study = _study(optuna, name, storage, base.seed)
    store = store or RunStore()
    shared = target.parent / f".{target.name}.sweep"
    staging = shared / str(os.getpid())
    staging.mkdir(parents=True, exist_ok=True)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    if not study.trials:
        study.enqueue_trial(_defaults(base, params))
    objective = _Objective(optuna, data_dir, staging, base, space, name, store, tracking_uri)
    objective.on_event, objective.cancel = on_event, cancel or CancelToken()
    interrupted = False
    try:
        left = trials - len(study.get_trials(deepcopy=False, states=finished))
        if left > 0:
            study.optimize(
                objective,
                n_trials=left,
                catch=(TrainError, BundleError, OSError, ValueError, RuntimeError),
                callbacks=[
                    lambda s, t: _keep_best(s, t, target, shared, store),
                    optuna.study.MaxTrialsCallback(trials, states=finished),
                ],
            )
    except (Cancelled, KeyboardInterrupt):
        interrupted = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            shared.rmdir()  # the last process of the study removes the shared folder
    outcomes = [_outcome(optuna, trial) for trial in study.get_trials(deepcopy=False)]
    best = next((o for o in outcomes if o.number == _best_number(study)), None)
    return SweepResult(name, outcomes, best, target, interrupted, space)


class _Objective:
    """One trial: a recorded training run with the proposed config, pruned by the median."""

    def __init__(
        self,
        optuna: Any,
        data_dir: str | Path,
        staging: Path,
        base: TrainConfig,
        space: dict[str, Any],
        study: str,
        store: RunStore,
        tracking_uri: str | None,
    ) -> None:
        self.optuna, self.data_dir, self.staging, self.base = optuna, data_dir, staging, base
        self.space, self.study, self.store, self.tracking_uri = space, study, store, tracking_uri
        self.on_event: EventCallback | None = None
        self.cancel = CancelToken()

    def __call__(self, trial: Any) -> float:
        try:
            return self._run(trial)
        except (TrainError, BundleError, OSError, ValueError, RuntimeError) as exc:
            trial.set_user_attr("error", str(exc)[:500])  # the summary names it
            raise

    def _run(self, trial: Any) -> float:
        config = dataclasses.replace(self.base, **self._suggest(trial), resume=False).resolved()
        trial_cancel, pruned, result = CancelToken(), False, None
        events = recorded_train(
            self.data_dir,
            self.staging / f"trial-{trial.number}",
            config,
            cancel=trial_cancel,
            store=self.store,
            tags={"sweep": self.study, "trial": str(trial.number)},
            tracking_uri=self.tracking_uri,
        )
        for event in events:
            if self.on_event is not None:
                self.on_event(trial.number, event)
            if self.cancel.cancelled:
                trial_cancel.cancel()
            if event.kind == "epoch" and not math.isnan(event.val_accuracy):
                trial.report(event.val_accuracy, event.epoch)
                if not pruned and trial.should_prune():
                    pruned = True
                    trial_cancel.cancel()
            if event.result is not None:
                result = event.result
                trial.set_user_attr("run_id", event.data.get("run_id"))
                trial.set_user_attr("bundle", str(result.bundle.path))
        if self.cancel.cancelled:
            if result is not None:
                _remove_trial_bundle(result.bundle.path, self.store, trial.user_attrs.get("run_id"))
            raise Cancelled()
        if result is None:
            raise RuntimeError("the trial ended without a model")
        if pruned:
            _remove_trial_bundle(result.bundle.path, self.store, trial.user_attrs.get("run_id"))
            raise self.optuna.TrialPruned()
        return float(result.metrics["training"]["best_val_accuracy"])

    def _suggest(self, trial: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, bounds in self.space.items():
            if "choices" in bounds:
                values[name] = trial.suggest_categorical(name, bounds["choices"])
            elif name == "lr":
                values[name] = trial.suggest_float(name, bounds["low"], bounds["high"], log=True)
            else:
                values[name] = trial.suggest_int(name, bounds["low"], bounds["high"])
        if "augment" in values:
            text = values["augment"]
            values["augment"] = () if text == "none" else parse_augmentations(text)
        return values


def _keep_best(study: Any, trial: Any, target: Path, shared: Path, store: RunStore) -> None:
    """After each trial: its model goes to ``target`` when it is the study's best so far
    (checked and moved under one lock, so two processes never leave the worse one there),
    else it is removed."""
    bundle, run_id = trial.user_attrs.get("bundle"), trial.user_attrs.get("run_id")
    if not bundle or not Path(bundle).is_dir():
        return
    with folder_lock(shared):
        if trial.state.name != "COMPLETE" or _best_number(study) != trial.number:
            _remove_trial_bundle(Path(bundle), store, run_id)
            return
        place_bundle(bundle, target)
        _note_bundle(store, run_id, str(target), f"the sweep's best so far, at {target}")
        for other in store.runs():
            if other.get("bundle") == str(target) and other["id"] != run_id:
                _note_bundle(
                    store, other["id"], None, f"replaced at {target} by trial {trial.number}"
                )


def _remove_trial_bundle(bundle: Path, store: RunStore, run_id: str | None) -> None:
    shutil.rmtree(bundle, ignore_errors=True)
    _note_bundle(store, run_id, None, "not kept: a sweep keeps its best model only")


def _note_bundle(store: RunStore, run_id: str | None, bundle: str | None, why: str) -> None:
    if not run_id:
        return
    with contextlib.suppress(RunStoreError):
        record = store.get(run_id)
        record["bundle"], record["placement"] = bundle, why
        store.write(record)


def _study(optuna: Any, name: str, storage: str | None, seed: int) -> Any:
    sampler_seed = seed if storage is None else seed + os.getpid()  # processes differ
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=3)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    try:
        return optuna.create_study(
            study_name=name,
            storage=_storage(optuna, storage),
            sampler=sampler,
            pruner=pruner,
            direction="maximize",
            load_if_exists=True,
        )
    except SweepError:
        raise
    except Exception as exc:  # Optuna and SQLAlchemy raise their own errors
        raise SweepError(f"the study storage {storage} cannot be used: {exc}") from None


def _storage(optuna: Any, storage: str | None) -> Any:
    """An Optuna database URL as it is; any other text is a journal file's path."""
    if storage is None or "://" in storage:
        return storage
    path = Path(storage)
    if not path.parent.is_dir():
        raise SweepError(f"the journal file's folder {path.parent} does not exist")
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _defaults(base: TrainConfig, params: Sequence[str]) -> dict[str, Any]:
    values = {name: getattr(base, name) for name in params}
    if "augment" in values:
        values["augment"] = ",".join(base.augment or ()) or "none"
    return values


def _best_number(study: Any) -> int | None:
    try:
        return study.best_trial.number
    except ValueError:  # no finished trial yet
        return None


def _outcome(optuna: Any, trial: Any) -> TrialOutcome:
    states = {
        optuna.trial.TrialState.COMPLETE: "complete",
        optuna.trial.TrialState.PRUNED: "pruned",
        optuna.trial.TrialState.FAIL: "failed",
    }
    return TrialOutcome(
        number=trial.number,
        state=states.get(trial.state, "running"),
        params=dict(trial.params),
        value=trial.value,
        run_id=trial.user_attrs.get("run_id"),
        error=trial.user_attrs.get("error"),
    )


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise SweepError(
            "sweeps need Optuna, which this build of cnn-desktop does not have "
            "(the full package has it; or pip install optuna)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the summary says what failed
    return optuna
