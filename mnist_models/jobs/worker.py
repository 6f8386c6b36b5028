"""The background trainer behind the Train page: one per server process, one training job at a time on a machine.

Streamlit reruns a page's script on every click and drops it when the tab closes, so training cannot live in the
script thread. A request (one or more models, or the recovery of an interrupted training) runs in a training process
of its own (``child``), at a lower CPU priority than the server, so drawing and watching stay responsive; a thread
owned by this module reads its reports, and pages only submit, cancel and read snapshots. The models of one request
run one after another; a second request while one is active is refused with a message saying what is running. The
machine-wide training lock extends the rule to other processes (a second server, the command line), so nothing can
train in parallel by accident.

As with any use of multiprocessing, a program that starts the worker from a script must guard its entry point with
``if __name__ == "__main__":``: the training process imports the main module (Streamlit's and pytest's are guarded).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import forkserver
from pathlib import Path
from typing import Any, TextIO

from ..models.registry import get_spec
from ..paths import resolve_data_root, resolve_runs_dir
from ..store.checkpoints import read_partial
from ..store.files import check_room
from ..store.records import ClassificationMetrics
from ..training.config import TrainConfig
from ..training.locking import TrainingBusy, acquire_training_lock
from ..training.loop import Progress
from ..training.pipeline import config_of, storage_needed
from ..training.recovery import IncompleteKind, IncompleteTraining
from .child import DataLoader, InheritedLock, load_split, run_request
from .orders import JobAction, JobState, JobUpdate, Order, StudyOrder, describe_failure, needed

__all__ = ["Job", "JobAction", "JobState", "StudyOrder", "TrainingWorker", "WorkerBusy", "describe_failure",
           "shared_worker", "start_process_server"]
LOGGER = logging.getLogger(__name__)
# Training processes fork from one server process that has torch and the library imported: a request starts in a
# fraction of a second rather than the seconds a fresh interpreter takes, and no thread of the dashboard is forked.
PROCESSES = multiprocessing.get_context("forkserver")
PROCESSES.set_forkserver_preload(["mnist_models.jobs.child"])


def start_process_server() -> None:
    """Start that fork server now rather than at the first request, which would otherwise wait seconds for it to
    import torch (the dashboard's warm-up calls this)."""
    forkserver.ensure_running()


@dataclass
class Job:
    """One model's training (or recovery) within a request, as the worker sees it; pages get copies from
    ``snapshot``."""

    number: int
    request: int  # the number of the request it belongs to, for cancel(request=...)
    model: str  # the registry name
    config: TrainConfig | None  # None when completing an interrupted training (nothing is trained)
    action: JobAction = JobAction.TRAIN
    incomplete: IncompleteTraining | None = None  # what a RESUME or COMPLETE job works on
    study: StudyOrder | None = None  # what a TUNE or SAVE_BEST job works on
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
        title = get_spec(self.model).title
        if self.action is not JobAction.TUNE:
            return title
        return f"{title} study {needed(self.study, self.action, 'study').name}"

    @property
    def latest(self) -> Progress | None:
        return self.events[-1] if self.events else None

    @property
    def epoch_events(self) -> list[Progress]:
        return [event for event in self.events if event.kind == "epoch"]

    def order(self) -> Order:
        return Order(self.action, self.config, self.incomplete, self.study)


class WorkerBusy(TrainingBusy):
    """A request arrived while another is training on this machine; the message says which."""


@dataclass
class Request:
    number: int  # lets a Cancel button drawn for one request never stop the next
    jobs: list[Job]
    runs_dir: Path
    data_dir: Path
    cancel: Any = field(default_factory=PROCESSES.Event)  # shared with the training process
    process: Any = None  # the training process, once started

    @property
    def active(self) -> bool:
        return any(job.state.active for job in self.jobs)


class TrainingWorker:
    """Accepts one request at a time and runs it in a training process, watched from a background thread."""

    def __init__(self, load_data: DataLoader | None = None) -> None:
        """``load_data(dataset, split, root)`` loads a split in the training process: a picklable function (module
        level)."""
        self._load_data = load_data or load_split
        self._guard = threading.Lock()
        self._request: Request | None = None
        self._thread: threading.Thread | None = None
        self._job_numbers = itertools.count(1)
        self._request_numbers = itertools.count(1)

    def submit(self, configs: list[TrainConfig], runs_dir: str | os.PathLike | None = None,
               data_dir: str | os.PathLike | None = None) -> list[Job]:
        """Queue ``configs`` as one request and start training; WorkerBusy if anything is training already, a
        StorageError if the runs folder cannot take the files."""
        if not configs:
            raise ValueError("choose at least one model to train")
        folder = resolve_runs_dir(runs_dir)
        check_room(folder, sum(storage_needed(config) for config in configs),
                   "training " + ", ".join(get_spec(config.model).title for config in configs))
        return self._start([(config.model, config, JobAction.TRAIN, None) for config in configs], folder, data_dir)

    def recover(self, incomplete: IncompleteTraining, action: JobAction, runs_dir: str | os.PathLike | None = None,
                data_dir: str | os.PathLike | None = None) -> list[Job]:
        """Resume or complete an interrupted training (see ``recovery``) as a request of its own."""
        if action.value not in incomplete.actions or action is JobAction.TRAIN:
            raise ValueError(f"{incomplete.name} cannot be {action.value}d; it can be: {', '.join(incomplete.actions)}")
        folder = resolve_runs_dir(runs_dir)
        config = None
        if incomplete.kind is IncompleteKind.PARTIAL:
            config = config_of(read_partial(incomplete.path, mmap=True).meta)
            if action is JobAction.RESUME:
                check_room(incomplete.checkpoint.parent, storage_needed(config), f"resuming {incomplete.title}")
        return self._start([(incomplete.model, config, action, incomplete)], folder, data_dir)

    def tune(self, study: StudyOrder, runs_dir: str | os.PathLike | None = None,
             data_dir: str | os.PathLike | None = None) -> list[Job]:
        """Add ``study.trials`` trials to a hyperparameter study (created if new), one at a time, as a request of its
        own; cancelling fails the trial in progress and keeps the study. Trials save no run."""
        return self._start([(study.model, None, JobAction.TUNE, None, study)], resolve_runs_dir(runs_dir), data_dir)

    def save_best(self, study: StudyOrder, config: TrainConfig, runs_dir: str | os.PathLike | None = None,
                  data_dir: str | os.PathLike | None = None) -> list[Job]:
        """Retrain the study's best trial, whose ``config`` (``tuning.best_config``) sizes the files, on every
        training image and save it as a run with its test evaluation (``tuning.save_best_trial``)."""
        folder = resolve_runs_dir(runs_dir)
        config = dataclasses.replace(config, train_subset=None)
        check_room(folder, storage_needed(config), f"saving the best trial of study {study.name}")
        return self._start([(study.model, config, JobAction.SAVE_BEST, None, study)], folder, data_dir)

    def _start(self, jobs: list[tuple], runs_dir: Path, data_dir: str | os.PathLike | None) -> list[Job]:
        with self._guard:
            if self._request is not None and self._busy():
                raise WorkerBusy(f"A training request is already running ({self._describe(self._request)}). "
                                 f"Wait for it to finish or cancel it, then start yours.")
            lock = acquire_training_lock("the dashboard's training worker")
            number = next(self._request_numbers)
            request = Request(number, [Job(next(self._job_numbers), number, *job) for job in jobs], runs_dir,
                              resolve_data_root(data_dir))
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
        if self._request is None:
            return False
        return self._request.active or (self._thread is not None and self._thread.is_alive())

    @property
    def busy(self) -> bool:
        with self._guard:
            return self._busy()

    @property
    def training_process(self) -> int | None:
        """The process id of the running request's training process (for signals and measurements)."""
        with self._guard:
            process = self._request.process if self._request is not None else None
            return process.pid if process is not None and process.is_alive() else None

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
            return "finishing: computing the evidence of the run it saved"
        latest = running.latest
        where = (f", epoch {latest.epoch}/{latest.epochs}, about {math.ceil(latest.eta_s / 60)} min left"
                 if latest else "")
        return f"{running.title}{where}"

    def _apply(self, job: Job, update: JobUpdate) -> None:
        with self._guard:
            if update.event is not None:
                job.events.append(update.event)
                event = update.event
                if event.kind == "epoch":
                    job.log.append(f"epoch {event.epoch}/{event.epochs}: loss {event.loss:.4f}, accuracy "
                                   f"{event.accuracy:.2%}, validation loss {event.val_loss:.4f}, validation accuracy "
                                   f"{event.val_accuracy:.2%} ({event.images_per_s:,.0f} images/s)")
            if update.note is not None:
                job.log.append(update.note)
            for name in ("error", "run_id", "run_title", "metrics"):
                if getattr(update, name) is not None:
                    setattr(job, name, getattr(update, name))
            if update.state is not None:
                if job.started is None and update.state in (JobState.RUNNING, JobState.EVALUATING):
                    job.started = time.time()
                job.state = update.state
                if not job.state.active:
                    job.ended = time.time()

    def _work(self, request: Request, lock: TextIO) -> None:
        try:
            receiver, sender = PROCESSES.Pipe(duplex=False)
            process = PROCESSES.Process(
                target=run_request, name="digit-lab-training", daemon=True,
                args=([job.order() for job in request.jobs], request.runs_dir, request.data_dir, self._load_data,
                      request.cancel, InheritedLock(lock), sender, dict(os.environ)))
            process.start()
            sender.close()  # the process holds the other end: reading ends when it does
            with self._guard:
                request.process = process
            with receiver:
                while True:
                    try:
                        update = receiver.recv()
                    except EOFError:
                        break
                    self._apply(request.jobs[update.index], update)
            process.join()
            if process.exitcode:
                self._fail_active(request, _describe_exit(process.exitcode))
        except Exception as error:  # could not start or follow the process: say why on the page
            LOGGER.exception("the training process of request %s failed", request.number)
            self._fail_active(request, describe_failure(error))
        finally:
            self._fail_active(request, "the training worker stopped unexpectedly")  # only by a bug: never stay busy
            lock.close()  # releases the machine-wide lock once the training process has closed its copy too

    def _fail_active(self, request: Request, reason: str) -> None:
        for index, job in enumerate(request.jobs):
            if job.state.active:
                self._apply(job, JobUpdate(index, state=JobState.FAILED, error=reason, note=f"failed: {reason}"))


def _describe_exit(code: int) -> str:
    if code < 0:
        return (f"the training process was killed ({signal.Signals(-code).name}); its finished epochs, if any, are "
                f"listed under interrupted trainings")
    return f"the training process ended with exit code {code}"


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
