"""The background trainer behind the Train page: one per server process, one training job at a time on a machine.

Streamlit reruns a page's script on every click and drops it when the tab closes, so training cannot live in the
script thread. A request (one or more models) runs in a worker thread owned by this module; pages only submit,
cancel and read snapshots. The models of one request run one after another; a second request while one is active is
refused with a message saying what is running. The machine-wide training lock extends the rule to other processes
(a second server, the command line), so nothing can train in parallel by accident.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

import torch

from ..data import load_mnist
from ..models.registry import get_spec
from ..paths import resolve_data_root, resolve_runs_dir
from ..store.records import ClassificationMetrics
from .config import TrainConfig
from .locking import TrainingBusy, acquire_training_lock
from .loop import Progress, TrainResult
from .pipeline import train_and_save

LOGGER = logging.getLogger(__name__)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    EVALUATING = "evaluating"  # trained; measuring on the test set and saving
    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        return self in (JobState.QUEUED, JobState.RUNNING, JobState.EVALUATING)


@dataclass
class Job:
    """One model's training within a request, as the worker sees it; pages get copies from ``snapshot``."""

    number: int
    request: int  # the number of the request it belongs to, for cancel(request=...)
    config: TrainConfig
    state: JobState = JobState.QUEUED
    events: list[Progress] = field(default_factory=list)  # every progress report, batch and epoch
    log: list[str] = field(default_factory=list)
    error: str | None = None
    run_id: str | None = None
    run_title: str | None = None
    metrics: ClassificationMetrics | None = None  # the saved run's test-set metrics
    started: float | None = None
    ended: float | None = None

    @property
    def title(self) -> str:
        return get_spec(self.config.model).title

    @property
    def latest(self) -> Progress | None:
        return self.events[-1] if self.events else None

    @property
    def epoch_events(self) -> list[Progress]:
        return [event for event in self.events if event.kind == "epoch"]


class WorkerBusy(TrainingBusy):
    """A request arrived while another is training on this machine; the message says which."""


@dataclass
class Request:
    number: int  # lets a Cancel button drawn for one request never stop the next
    jobs: list[Job]
    runs_dir: Path
    data_dir: Path
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def active(self) -> bool:
        return any(job.state.active for job in self.jobs)


def describe_failure(error: BaseException) -> str:
    """A sentence a person can act on, for an exception that ended a job."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)) or "can't allocate memory" in detail:
        return f"out of memory ({detail}); try a smaller batch size or training subset"
    return detail


class TrainingWorker:
    """Accepts one request at a time and trains its models in a background thread."""

    def __init__(self, load_data: Callable[[str, Path], tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        self._load_data = load_data or (lambda split, root: load_mnist(split, root, download=False))
        self._guard = threading.Lock()
        self._request: Request | None = None
        self._thread: threading.Thread | None = None
        self._job_numbers = itertools.count(1)
        self._request_numbers = itertools.count(1)

    def submit(self, configs: list[TrainConfig], runs_dir: str | os.PathLike | None = None,
               data_dir: str | os.PathLike | None = None) -> list[Job]:
        """Queue ``configs`` as one request and start training; WorkerBusy if anything is training already."""
        if not configs:
            raise ValueError("choose at least one model to train")
        with self._guard:
            if self._busy():
                raise WorkerBusy(f"A training request is already running ({self._describe(self._request)}). "
                                 f"Wait for it to finish or cancel it, then start yours.")
            lock = acquire_training_lock("the dashboard's training worker")
            number = next(self._request_numbers)
            request = Request(number, [Job(next(self._job_numbers), number, config) for config in configs],
                              resolve_runs_dir(runs_dir), resolve_data_root(data_dir))
            thread = threading.Thread(target=self._work, args=(request, lock), daemon=True, name="digit-lab-training")
            try:
                thread.start()
            except BaseException:
                lock.close()
                raise
            self._request, self._thread = request, thread
        return self.snapshot()

    def cancel(self, request: int | None = None) -> bool:
        """Stop the running job (it is saved as cancelled if an epoch finished) and drop the queued ones. With
        ``request``, only if that request is still the current one."""
        with self._guard:
            current = self._request
            if current is None or not current.active or request not in (None, current.number):
                return False
            current.cancel.set()
            return True

    def snapshot(self) -> list[Job]:
        """Copies of the current (or last) request's jobs, safe to read while the worker goes on."""
        with self._guard:
            if self._request is None:
                return []
            return [dataclasses.replace(job, events=list(job.events), log=list(job.log))
                    for job in self._request.jobs]

    def _busy(self) -> bool:
        """A job is active or the thread is still finishing (and holds the machine lock); call under the guard."""
        return self._request is not None and (self._request.active or self._thread.is_alive())

    @property
    def busy(self) -> bool:
        with self._guard:
            return self._busy()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current request is done (tests and scripts); False on timeout."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy

    @staticmethod
    def _describe(request: Request) -> str:
        running = next((job for job in request.jobs if job.state.active), None)
        if running is None:
            return "finishing"
        latest = running.latest
        where = (f", epoch {latest.epoch}/{latest.epochs}, about {math.ceil(latest.eta_s / 60)} min left"
                 if latest else "")
        return f"{running.title}{where}"

    def _update(self, job: Job, **changes: Any) -> None:
        with self._guard:
            for name, value in changes.items():
                setattr(job, name, value)

    def _record(self, job: Job, event: Progress) -> None:
        with self._guard:
            job.events.append(event)
            if event.kind == "epoch":
                job.log.append(f"epoch {event.epoch}/{event.epochs}: loss {event.loss:.4f}, accuracy "
                               f"{event.accuracy:.2%}, validation loss {event.val_loss:.4f}, validation accuracy "
                               f"{event.val_accuracy:.2%} ({event.images_per_s:,.0f} images/s)")

    def _note(self, job: Job, line: str) -> None:
        with self._guard:
            job.log.append(line)

    def _work(self, request: Request, lock: TextIO) -> None:
        try:
            for job in request.jobs:
                if request.cancel.is_set():
                    self._update(job, state=JobState.CANCELLED, ended=time.time())
                    self._note(job, "cancelled before it started")
                    continue
                self._run_job(job, request)
        finally:
            for job in request.jobs:  # only reached by a bug: never leave the worker looking busy forever
                if job.state.active:
                    self._update(job, state=JobState.FAILED, error="the training worker stopped unexpectedly",
                                 ended=time.time())
            lock.close()  # closing the file releases the machine-wide lock

    def _run_job(self, job: Job, request: Request) -> None:
        self._update(job, state=JobState.RUNNING, started=time.time())
        config = job.config
        self._note(job, f"training {job.title}: {config.epochs} epochs, batch {config.batch_size}, {config.optimizer} "
                        f"lr {config.lr:g}, {config.train_subset or 'all'} training images, seed {config.seed}")
        try:
            result, saved = train_and_save(
                config, self._load_data("train", request.data_dir), self._load_data("test", request.data_dir),
                runs_dir=request.runs_dir, keep_cancelled=True, progress=lambda event: self._record(job, event),
                cancel=request.cancel, on_trained=lambda result: self._evaluating(job, result))
        except Exception as error:  # the worker's boundary: any failure ends this job only, with its reason
            LOGGER.exception("training job %s (%s) failed", job.number, config.model)
            reason = describe_failure(error)
            self._note(job, f"failed: {reason}")
            self._update(job, state=JobState.FAILED, error=reason, ended=time.time())
            return
        if saved is None:
            self._note(job, "cancelled before the first epoch finished: nothing to save")
            self._update(job, state=JobState.CANCELLED, ended=time.time())
            return
        self._note(job, f"saved as {saved.run.run_id}: test accuracy {saved.evaluation.metrics.accuracy:.2%}")
        self._update(job, state=JobState.CANCELLED if result.cancelled else JobState.FINISHED,
                     run_id=saved.run.run_id, run_title=saved.run.title, metrics=saved.evaluation.metrics,
                     ended=time.time())

    def _evaluating(self, job: Job, result: TrainResult) -> None:
        self._update(job, state=JobState.EVALUATING)
        self._note(job, f"{'cancelled after' if result.cancelled else 'trained'} {result.epochs_completed} "
                        f"epoch(s) in {result.train_time_s:.1f} s; evaluating on the test set")


_SHARED: TrainingWorker | None = None
_SHARED_GUARD = threading.Lock()


def shared_worker() -> TrainingWorker:
    """The process's one worker. A module global rather than st.cache_resource: clearing Streamlit's cache must not
    orphan a running job or create a second worker."""
    global _SHARED
    with _SHARED_GUARD:
        if _SHARED is None:
            _SHARED = TrainingWorker()
        return _SHARED
