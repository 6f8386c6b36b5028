"""Hyperparameter search with Optuna: one study per model, one trial at a time, driven by validation accuracy only.

A trial is a ``TrainConfig``: the model's registry recipe with the searched settings (``search_space``) replaced.
It trains on the training images with the loop's fixed validation split held out, reports the validation accuracy
after every epoch to Optuna's median pruner, and is worth the validation accuracy of its last epoch: the weights a
saved run of that config would have, not a lucky epoch in the middle of a schedule.

Trials differ in their number of epochs, and a one-cycle schedule ends on its best epoch, so the reports are aligned
at the end of each schedule: step = epoch + (the space's most epochs − the trial's epochs), every trial's last epoch
being the same step. A trial is thus compared with others as far from the end of theirs, never with finished ones
while it is still at a high learning rate. A trial's last epoch is never pruned (there is nothing left to save).

The study lives in Optuna's storage, by default the SQLite file ``studies.db`` in the runs folder (any Optuna storage
URL can be given instead): it survives a restart, and running the study again adds trials to it. Several processes
share a study through a journal file (``studies.journal``: the default for ``tune --workers N``, see
``parallel_tuning``) or a database server (a ``postgresql://`` URL, for several machines). The test set is
touched only by ``save_best_trial``, which retrains the best trial's config on all the training images through the
one train → save → evaluate pipeline, so the result is an ordinary run every page can use.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .errors import DigitLabError
from .extras import needs_extra
from .models.registry import get_spec
from .paths import resolve_runs_dir
from .training.config import TrainConfig
from .training.loop import CancelFlag, Progress, train
from .training.pipeline import SavedModel, Split, train_and_save

with needs_extra("tune", "Hyperparameter search"):
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import FrozenTrial, TrialState

STUDY_FILE = "studies.db"  # in the runs folder: one SQLite database holding every model's study
JOURNAL_FILE = "studies.journal"  # in the runs folder: the studies that several worker processes run at once
JOURNAL_PREFIX = "journal:///"  # our URL for a journal file (Optuna has none): journal:/// and the path, as SQLite's
HEARTBEAT_S = 60  # a trial whose process died (no heartbeat for GRACE_S) is marked failed when the study next runs
GRACE_S = 180
# The search space, relative to each model's registry recipe so that no model needs its own copy.
LR_FACTORS = (0.1, 10.0)  # learning rate: log-uniform from a tenth of the recipe's to ten times it
BATCH_SIZES = (32, 64, 128, 256)
MIN_EPOCHS = 1  # epochs: from this to the recipe's (or a cap given to search_space)
AUGMENT_STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)  # 0 turns augmentation off
DROPOUT_RANGE = (0.0, 0.6)  # for models that have a dropout
WIDTH_SCALES = (0.5, 1.0, 1.5, 2.0)  # one factor on every width the model has (see WIDTH_KNOBS)
WIDTH_KNOBS = ("dense_size", "hidden_size", "hidden_sizes", "filters", "widths")  # registry architecture names
# The median pruner: after two complete trials, a trial whose best validation accuracy so far is below the median of
# the complete trials' at the same step stops, from its second epoch on (the first is mostly warm-up).
PRUNER_STARTUP_TRIALS = 2
PRUNE_FROM_EPOCH = 2
RUNNER_ATTR = "runner"  # a trial's user attr: the host, process and torch threads that ran it (of several workers)


class TuningCancelled(DigitLabError):
    """A trial stopped by the cancel flag: Optuna records it as failed (never as a result) and the study ends."""


@dataclass(frozen=True)
class SearchSpace:
    """What a study of one model searches; None where the model has no such knob."""

    model: str
    lr: tuple[float, float]
    batch_sizes: tuple[int, ...]
    epochs: tuple[int, int]
    augment_strengths: tuple[float, ...]
    dropout: tuple[float, float] | None
    width_scales: tuple[float, ...] | None

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Draw one point: the trial's params, under the names ``config_for`` reads."""
        params: dict[str, Any] = {
            "lr": trial.suggest_float("lr", *self.lr, log=True),
            "batch_size": trial.suggest_categorical("batch_size", self.batch_sizes),
            "epochs": trial.suggest_int("epochs", *self.epochs),
            "augment_strength": trial.suggest_categorical("augment_strength", self.augment_strengths),
        }
        if self.dropout is not None:
            params["dropout"] = trial.suggest_float("dropout", *self.dropout)
        if self.width_scales is not None:
            params["width"] = trial.suggest_categorical("width", self.width_scales)
        return params

    def config_for(self, params: dict[str, Any], **fixed: Any) -> TrainConfig:
        """The model's recipe with ``params`` in place (and ``fixed`` TrainConfig settings, e.g. train_subset)."""
        defaults = get_spec(self.model).architecture_defaults
        architecture: dict[str, Any] = {}
        if "dropout" in params:
            architecture["dropout"] = params["dropout"]
        if "width" in params:
            architecture.update({knob: _scaled(defaults[knob], params["width"])
                                 for knob in WIDTH_KNOBS if knob in defaults})
        strength = params["augment_strength"]
        return TrainConfig.for_model(self.model, architecture=architecture, lr=params["lr"],
                                     batch_size=params["batch_size"], epochs=params["epochs"], augment=strength > 0,
                                     augment_strength=strength if strength > 0 else None, **fixed)


def _scaled(width: int | Sequence[int], scale: float) -> int | tuple[int, ...]:
    if isinstance(width, int):
        return max(1, round(width * scale))
    return tuple(max(1, round(value * scale)) for value in width)


def search_space(model: str, max_epochs: int | None = None) -> SearchSpace:
    """The search space of ``model``, derived from its registry entry: its recipe's learning rate and epochs set
    the ranges, its architecture says whether dropout and a width are searched. ``max_epochs`` caps the epochs."""
    spec = get_spec(model)
    recipe = TrainConfig.for_model(model)
    top_epochs = max(MIN_EPOCHS, min(recipe.epochs, max_epochs or recipe.epochs))
    has_width = any(knob in spec.architecture_defaults for knob in WIDTH_KNOBS)
    return SearchSpace(model=model, lr=(recipe.lr * LR_FACTORS[0], recipe.lr * LR_FACTORS[1]), batch_sizes=BATCH_SIZES,
                       epochs=(MIN_EPOCHS, top_epochs), augment_strengths=AUGMENT_STRENGTHS,
                       dropout=DROPOUT_RANGE if "dropout" in spec.architecture_defaults else None,
                       width_scales=WIDTH_SCALES if has_width else None)


def storage_url(storage: str | os.PathLike | None = None, runs_dir: str | os.PathLike | None = None, *,
                workers: int = 1) -> str:
    """A storage URL: ``storage`` as given when it is a URL, a file path as an SQLite URL (a journal URL when it ends
    in ``.journal``), and by default the runs folder's ``studies.db``, or ``studies.journal`` for several workers
    (SQLite is no place for several processes writing at once)."""
    if storage is not None and "://" in str(storage):
        return str(storage)
    path = os.fspath(storage if storage is not None else
                     resolve_runs_dir(runs_dir) / (STUDY_FILE if workers <= 1 else JOURNAL_FILE))
    return f"{JOURNAL_PREFIX}{path}" if path.endswith(".journal") else f"sqlite:///{path}"


def _open_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage behind ``url``, the one place that chooses its kind. A journal file is an append-only log that
    several processes on one machine write safely (under a lock file next to it); it has no heartbeats. A database
    gets heartbeats so a trial left running by a killed process is failed rather than left running for ever. A
    ValueError when the database's driver is not installed."""
    for prefix in (JOURNAL_PREFIX, "sqlite:///"):
        folder = os.path.dirname(url.removeprefix(prefix)) if url.startswith(prefix) else ""
        if folder:
            os.makedirs(folder, exist_ok=True)
    if url.startswith(JOURNAL_PREFIX):
        return optuna.storages.JournalStorage(
            JournalFileBackend(url.removeprefix(JOURNAL_PREFIX)))
    with warnings.catch_warnings():  # heartbeats are an "experimental" argument since Optuna 2.9, and still work
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        except ImportError as error:  # Optuna's own, raised from the driver's ModuleNotFoundError
            driver = getattr(error.__cause__, "name", None) or "its driver"
            raise ValueError(f"{url.partition(':')[0]} storage needs its Python driver, and {driver!r} is not "
                             f"installed (PostgreSQL's is in requirements.txt: psycopg[binary])") from None


def open_study(model: str, study_name: str | None = None, storage: str | None = None, seed: int = 0,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create the study, or load it with its trials when it exists (named after the model by default).

    The TPE sampler is seeded with ``seed`` plus the number of trials already there, so a resumed study is
    reproducible without repeating the first session's random start-up draws."""
    name = study_name or model
    url = storage_url(storage)
    backend = _open_storage(url)
    existing = {summary.study_name: summary for summary in optuna.get_all_study_summaries(backend)}
    if name in existing and existing[name].user_attrs.get("model") not in (None, model):
        raise ValueError(f"study {name!r} in {url} searches {existing[name].user_attrs['model']}, not {model}")
    trials_before = existing[name].n_trials if name in existing else 0
    study = optuna.create_study(
        storage=backend, study_name=name, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed + trials_before),
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS))
    study.set_user_attr("model", model)
    return study


def load_study(study_name: str, storage: str | None = None) -> optuna.Study:
    """An existing study, for reading or saving its best trial (a KeyError when there is none of that name)."""
    backend = _open_storage(storage_url(storage))
    try:
        return optuna.load_study(study_name=study_name, storage=backend)
    except KeyError:
        names = [summary.study_name for summary in optuna.get_all_study_summaries(backend)]
        raise KeyError(f"no study {study_name!r}; the storage holds {', '.join(names) or 'none'}") from None


def study_summaries(storage: str | None = None) -> list[optuna.study.StudySummary]:
    """Every study in the storage, with its model (``user_attrs["model"]``), trial count and best trial. A missing
    SQLite file holds none, and is not created by looking (the Train page looks on every visit)."""
    url = storage_url(storage)
    if url.startswith("sqlite:///") and not os.path.exists(url.removeprefix("sqlite:///")):
        return []
    return optuna.get_all_study_summaries(_open_storage(url))


def list_studies(storage: str | None = None) -> list[str]:
    """One line per study in the storage: name, model, trials, best validation accuracy."""
    lines = []
    for summary in study_summaries(storage):
        best = f"best val {summary.best_trial.value:.2%}" if summary.best_trial is not None else "no complete trial"
        lines.append(f"{summary.study_name:<16} {summary.user_attrs.get('model', '?'):<12} "
                     f"{summary.n_trials:>4} trials  {best}")
    return lines


TrialCallback = Callable[[FrozenTrial], None]


def run_study(study: optuna.Study, train_data: Split, *, trials: int | None = None, timeout_s: float | None = None,
              max_epochs: int | None = None, train_subset: int | None = None, seed: int = 0, device: str = "auto",
              cancel: CancelFlag | None = None, on_trial: TrialCallback | None = None,
              progress: Callable[[Progress], None] | None = None) -> list[FrozenTrial]:
    """Run ``trials`` more trials (or until ``timeout_s``), one at a time, on ``train_data``; returns the trials
    this call ran. A set ``cancel`` stops the trial in progress (recorded as failed) and ends the study early;
    everything finished before stays in the storage. ``progress`` sees every trial's training progress."""
    model = study.user_attrs["model"]
    space = search_space(model, max_epochs)
    fixed = {"train_subset": train_subset, "seed": seed, "device": device}
    numbers: list[int] = []  # of the trials this call runs (others may be waiting in the queue, or other workers')

    def objective(trial: optuna.Trial) -> float:
        numbers.append(trial.number)
        config = space.config_for(space.suggest(trial), **fixed)
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr(RUNNER_ATTR, {"host": socket.gethostname(), "pid": os.getpid(),
                                          "threads": torch.get_num_threads()})

        def report(event: Progress) -> None:
            if progress is not None:
                progress(event)
            if event.kind != "epoch":
                return
            assert event.val_accuracy is not None  # loop.train's epoch events always carry it
            trial.report(event.val_accuracy, event.epoch + space.epochs[1] - event.epochs)  # aligned at the end
            if PRUNE_FROM_EPOCH <= event.epoch < event.epochs and trial.should_prune():
                raise optuna.TrialPruned(f"validation accuracy {event.val_accuracy:.4f} after epoch {event.epoch}")

        result = train(config, progress=report, cancel=cancel, data=train_data)
        if result.cancelled:
            raise TuningCancelled(f"trial {trial.number} cancelled after {result.epochs_completed} epoch(s)")
        return result.history["val_accuracy"][-1]

    def after_trial(finished: optuna.Study, trial: FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(trial)
        if cancel is not None and cancel.is_set():
            finished.stop()

    if not (cancel is not None and cancel.is_set()):
        try:
            study.optimize(objective, n_trials=trials, timeout=timeout_s, callbacks=[after_trial])
        except TuningCancelled:
            if on_trial is not None:
                on_trial(study.trials[numbers[-1]])
    return [study.trials[number] for number in numbers]


def best_config(study: optuna.Study) -> TrainConfig:
    """The best complete trial's config, as it trained (a ValueError when no trial has completed)."""
    try:
        best = study.best_trial
    except ValueError:
        raise ValueError(f"study {study.study_name!r} has no complete trial yet") from None
    return TrainConfig(**best.user_attrs["config"])


def save_best_trial(study: optuna.Study, train_data: Split, test_data: Split, *,
                    runs_dir: str | os.PathLike | None = None, cancel: CancelFlag | None = None,
                    progress: Callable[[Progress], None] | None = None) -> SavedModel | None:
    """Retrain the best trial's config on every training image (trials may have used a subset) and save it as a new
    run with its test evaluation: the only time a study touches the test set. The run's number and its trial are
    recorded on the study. None when cancelled before the first epoch finished."""
    config = dataclasses.replace(best_config(study), train_subset=None)
    result, saved = train_and_save(config, train_data, test_data, runs_dir=runs_dir, progress=progress,
                                   cancel=cancel)
    if saved is not None and not result.cancelled:
        assert saved.run is not None  # train_and_save without a checkpoint saves a run
        study.set_user_attr("saved_run", {"run": saved.run.run_id, "trial": study.best_trial.number})
    return saved


def describe_trial(trial: FrozenTrial) -> str:
    """One line: number, state, validation accuracy (or the last reported one), time and params."""
    if trial.value is not None:
        accuracy = f"val {trial.value:.2%}"
    elif trial.intermediate_values:
        accuracy = f"val {trial.intermediate_values[max(trial.intermediate_values)]:.2%} when stopped"
    else:
        accuracy = "no epoch"
    seconds = trial.duration.total_seconds() if trial.duration is not None else math.nan
    params = ", ".join(f"{key}={_short(value)}" for key, value in trial.params.items())
    return f"trial {trial.number:>3} {trial.state.name.lower():<8} {accuracy:<22} {seconds:6.1f} s  {params}"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def summarise(study: optuna.Study) -> list[str]:
    """The study as lines of text: its trials, then the best and any saved run."""
    lines = [f"study {study.study_name} ({study.user_attrs.get('model', '?')}): {len(study.trials)} trials"]
    lines += [describe_trial(trial) for trial in study.trials]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        lines.append(f"best: {describe_trial(study.best_trial)}")
    if "saved_run" in study.user_attrs:
        saved = study.user_attrs["saved_run"]
        lines.append(f"saved as {saved['run']} (trial {saved['trial']})")
    return lines
