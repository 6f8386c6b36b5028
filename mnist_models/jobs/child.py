"""The training process behind the dashboard's worker: one per request, forked from multiprocessing's fork server
(which has torch and this library imported already), at a lower CPU priority than the server, so that pages stay
responsive while a model trains.

It runs the request's jobs one after another through the same pipeline as the command line and reports each step
to the worker's thread in the server through a pipe. It holds the machine-wide training lock as well (the server's
descriptor, inherited), so if the server dies first, nothing else starts training until this process has saved
what it has. It stops cleanly (the epoch in progress dropped, the finished ones saved as a cancelled run) when the
worker cancels, on SIGTERM or SIGINT (the server being stopped), or when the server is gone (the pipe breaks).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from multiprocessing import reduction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TextIO

import optuna
import torch

from ..data import load_dataset
from ..devices import training_threads
from ..evaluation import EVIDENCE_PARTS, held_out_validation, refresh_evidence
from ..models.registry import get_spec
from ..store.checkpoints import load_checkpoint
from ..training.loop import CancelFlag
from ..training.pipeline import SavedModel, resume_training, train_and_save
from ..training.recovery import complete
from ..training.stopping import StopRequest, stop_on_signals
from ..tuning import describe_trial, load_study, open_study, run_study, save_best_trial
from .orders import JobAction, JobState, JobUpdate, Order, StudyOrder, describe_failure, needed

LOGGER = logging.getLogger(__name__)
NICENESS_ENV, NICENESS = "DIGIT_LAB_TRAINING_NICENESS", 10  # below the server: its pages get the CPU first
EVIDENCE_ENV = "DIGIT_LAB_RUN_EVIDENCE"
"""The parts of the evidence computed for every run saved from the Train page, comma-separated (default: all of
``evaluation.EVIDENCE_PARTS``; empty: none). The run is listed, and its job finished, before they are computed."""

DataLoader = Callable[[str, str, Path], tuple[torch.Tensor, torch.Tensor]]
"""``load_data(dataset, split, root)``: a split of a dataset, in the training process."""
Data = Callable[[str, str], tuple[torch.Tensor, torch.Tensor]]
"""``data(dataset, split)``: a split, loaded once per training process."""


def load_split(dataset: str, split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The default data loader: the dataset must be there already (the server never downloads)."""
    return load_dataset(dataset, split, root, download=False)


class InheritedLock:
    """The server's training-lock file, handed to the training process as a duplicated descriptor when it starts."""

    def __init__(self, lock: TextIO) -> None:
        self._descriptor = lock.fileno()

    def __reduce__(self):
        return _reopen_lock, (reduction.DupFd(self._descriptor),)


def _reopen_lock(duplicate: Any) -> TextIO:
    return os.fdopen(duplicate.detach(), "a+")


class Reporter:
    """Sends JobUpdates to the server; when the server is gone (the pipe breaks), asks the training to stop."""

    def __init__(self, messages: Connection, stop: StopRequest) -> None:
        self._messages, self._stop, self._broken = messages, stop, False

    def __call__(self, index: int, **changes: Any) -> None:
        if self._broken:
            return
        try:
            self._messages.send(JobUpdate(index, **changes))
        except OSError:  # BrokenPipeError, ConnectionResetError: nobody is listening any more
            self._broken = True
            self._stop.set("the server stopped")


def run_request(orders: list[Order], runs_dir: Path, data_dir: Path, load_data: DataLoader, cancel: CancelFlag,
                lock: TextIO, messages: Connection, environment: dict[str, str]) -> None:
    """The training process's main function. ``lock`` arrives as the reopened InheritedLock and stays open (the
    lock held) until this process exits. ``environment`` is the server's at the request: the fork server's dates
    from the first request."""
    os.environ.clear()
    os.environ.update(environment)
    os.nice(int(os.environ.get(NICENESS_ENV) or NICENESS))
    torch.set_num_threads(training_threads())
    stop = StopRequest(cancel)
    report = Reporter(messages, stop)
    splits: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def data(dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if (dataset, split) not in splits:
            splits[dataset, split] = load_data(dataset, split, data_dir)
        return splits[dataset, split]

    with stop_on_signals(stop, second_interrupt_aborts=False), lock:
        for index, order in enumerate(orders):
            if stop.is_set():
                report(index, state=JobState.CANCELLED, note="cancelled before it started")
                continue
            try:
                saved = _run(order, index, data, runs_dir, stop, report)
            except Exception as error:  # the job's boundary: a failure ends this job only, with its reason
                LOGGER.exception("training job %s (%s) failed", index, order.action)
                reason = describe_failure(error)
                report(index, state=JobState.FAILED, error=reason, note=f"failed: {reason}")
                continue
            if saved is not None and not saved.meta.cancelled and not stop.is_set():
                _add_evidence(saved, index, data, stop, report)
    messages.close()


def _starting_note(order: Order) -> str:
    if order.action is JobAction.COMPLETE:
        return f"evaluating what the interrupted {needed(order.incomplete, order.action, 'training').title} had saved"
    config = needed(order.config, order.action, "config")
    if order.action is JobAction.RESUME:
        incomplete = needed(order.incomplete, order.action, "training")
        what = f"resuming {incomplete.title} after epoch {incomplete.epochs_completed}"
    elif order.action is JobAction.SAVE_BEST:
        study = needed(order.study, order.action, "study")
        what = f"retraining the best trial of study {study.name} on every training image"
    else:
        what = f"training {get_spec(config.model).title}"
    return (f"{what}: {config.epochs} epochs, batch {config.batch_size}, {config.optimizer} lr {config.lr:g}, "
            f"{config.train_subset or 'all'} training images, seed {config.seed}")


def _evidence_parts() -> list[str]:
    setting = os.environ.get(EVIDENCE_ENV)
    parts: list[str] = (list(EVIDENCE_PARTS) if setting is None
                        else [part.strip() for part in setting.split(",") if part.strip()])
    unknown = set(parts) - set(EVIDENCE_PARTS)
    if unknown:
        raise ValueError(f"{EVIDENCE_ENV} names unknown part(s) {sorted(unknown)}; use {', '.join(EVIDENCE_PARTS)}")
    return parts


def _add_evidence(saved: SavedModel, index: int, data: Data, stop: StopRequest, report: Reporter) -> None:
    """The saved run's evidence, after its job has finished (the run is already on every page), one part at a time:
    a cancel or a stopping server ends it between two steps; a failure is reported and leaves the run as it is."""

    def follow(part: str, done: int, total: int) -> None:
        if stop.is_set():
            raise EvidenceStopped

    try:
        parts = _evidence_parts()
        if not parts:
            return
        report(index, note=f"computing the run's evidence ({', '.join(parts)}); the run can be used meanwhile")
        network, meta = load_checkpoint(saved.checkpoint)
        validation = held_out_validation(meta, data(meta.dataset_name, "train"))
        for part in parts:
            follow(part, 0, 1)
            refresh_evidence(network, meta, data(meta.dataset_name, "test"), validation, [part], follow)
        report(index, note="evidence saved: see the Evidence page")
    except EvidenceStopped:
        report(index, note="the run's evidence was stopped; `digit-lab evaluate` computes it")
    except Exception as error:  # the run stays usable; its evidence can be computed again with `digit-lab evaluate`
        LOGGER.exception("the evidence of %s could not be computed", saved.checkpoint)
        report(index, note=f"the run's evidence could not be computed: {describe_failure(error)}")


class EvidenceStopped(Exception):
    """A cancel or a stopping server arrived while a run's evidence was being computed."""


def _run(order: Order, index: int, data: Data, runs_dir: Path, stop: StopRequest, report: Reporter
         ) -> SavedModel | None:
    """One job: train, resume or complete, then save; the saved model, None when nothing was saved. Or a study's
    trials, which save nothing."""
    if order.action is JobAction.TUNE:
        _tune(needed(order.study, order.action, "study"), index, data, stop, report)
        return None
    report(index, state=JobState.EVALUATING if order.action is JobAction.COMPLETE else JobState.RUNNING,
           note=_starting_note(order))

    def evaluating(result) -> None:
        report(index, state=JobState.EVALUATING,
               note=f"{'cancelled after' if result.cancelled else 'trained'} {result.epochs_completed} epoch(s) in "
                    f"{result.train_time_s:.1f} s; evaluating on the test set")

    def progress(event) -> None:
        report(index, event=event)

    if order.action is JobAction.COMPLETE:
        incomplete = needed(order.incomplete, order.action, "training")
        saved = complete(incomplete, data(incomplete.dataset, "test"), runs_dir)
        cancelled = bool(saved.meta.cancelled)
    else:
        common = {"runs_dir": runs_dir, "progress": progress, "cancel": stop, "on_trained": evaluating}
        config = needed(order.config, order.action, "config")
        train_data, test_data = data(config.dataset, "train"), data(config.dataset, "test")
        if order.action is JobAction.RESUME:
            result, saved = resume_training(needed(order.incomplete, order.action, "training").path, train_data,
                                            test_data, **common)
        elif order.action is JobAction.SAVE_BEST:
            study = needed(order.study, order.action, "study")
            saved = save_best_trial(load_study(study.name, study.storage), train_data, test_data,
                                    runs_dir=runs_dir, progress=progress, cancel=stop)
        else:
            result, saved = train_and_save(config, train_data, test_data, **common)
        if saved is None:
            report(index, state=JobState.CANCELLED, note="cancelled before the first epoch finished: nothing to save")
            return None
        cancelled = bool(saved.meta.cancelled)
    name = saved.run.run_id if saved.run is not None else str(saved.checkpoint)
    report(index, state=JobState.CANCELLED if cancelled else JobState.FINISHED,
           run_id=saved.run.run_id if saved.run is not None else None,
           run_title=saved.run.title if saved.run is not None else None, metrics=saved.evaluation.metrics,
           note=f"saved as {name}: test accuracy {saved.evaluation.metrics.accuracy:.2%}")
    return saved


def _tune(order: StudyOrder, index: int, data: Data, stop: StopRequest, report: Reporter) -> None:
    """Add ``order.trials`` trials to the study: every trial's training progress is the job's, and each finished
    trial is a line of its log. A cancel fails the trial in progress; the study keeps every trial."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the job's log says what each trial did
    report(index, state=JobState.RUNNING,
           note=f"study {order.name}: {order.trials} more trial(s) of the {get_spec(order.model).title}, on "
                f"{order.train_subset or 'all'} training images, at most {order.max_epochs or 'the recipe'} epochs")
    study = open_study(order.model, order.name, order.storage, seed=order.seed)
    ran = run_study(study, data("mnist", "train"), trials=order.trials, max_epochs=order.max_epochs,
                    train_subset=order.train_subset, seed=order.seed, device=order.device, cancel=stop,
                    on_trial=lambda trial: report(index, note=describe_trial(trial)),
                    progress=lambda event: report(index, event=event))
    cancelled = stop.is_set()
    report(index, state=JobState.CANCELLED if cancelled else JobState.FINISHED,
           note=f"{'cancelled after' if cancelled else 'ran'} {len(ran)} trial(s); the study is kept in "
                f"{order.storage}")
