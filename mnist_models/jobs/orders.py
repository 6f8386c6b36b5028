"""What the dashboard's worker (in the server) and its training process say to each other: the job states, the work
sent to the process (``Order``) and the reports it sends back (``JobUpdate``), all plain picklable values."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import torch

from ..store.records import ClassificationMetrics
from ..training.config import TrainConfig
from ..training.loop import Progress
from ..training.recovery import IncompleteTraining

T = TypeVar("T")


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


class JobAction(StrEnum):
    TRAIN = "train"
    RESUME = "resume"  # train the remaining epochs of an interrupted training
    COMPLETE = "complete"  # evaluate and save what an interrupted training left, without training
    TUNE = "tune"  # run trials of a hyperparameter study (see ``tuning``), one at a time
    SAVE_BEST = "save_best"  # retrain a study's best trial on every training image and save it as a run


@dataclass(frozen=True)
class StudyOrder:
    """A hyperparameter study for the training process: which one (in which Optuna storage) and, to TUNE it, how
    many trials to add and on what."""

    name: str
    storage: str  # an Optuna storage URL (tuning.storage_url)
    model: str
    trials: int = 1
    train_subset: int | None = None
    max_epochs: int | None = None
    seed: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class Order:
    """One job of a request, as the training process receives it: a config to train, or an interrupted training to
    resume or complete."""

    action: JobAction
    config: TrainConfig | None = None  # TRAIN and RESUME (read from the partial file)
    incomplete: IncompleteTraining | None = None  # RESUME and COMPLETE
    study: StudyOrder | None = None  # TUNE and SAVE_BEST


@dataclass(frozen=True)
class JobUpdate:
    """A report about job ``index`` of the request; fields left None did not change."""

    index: int
    state: JobState | None = None
    event: Progress | None = None
    note: str | None = None  # a line for the job's log
    error: str | None = None
    run_id: str | None = None
    run_title: str | None = None
    metrics: ClassificationMetrics | None = None


def needed(value: T | None, action: JobAction, what: str) -> T:
    """A field that an order's (or job's) ``action`` needs: a clear error for one built without it."""
    if value is None:
        raise ValueError(f"a {action} job has no {what}")
    return value


def describe_failure(error: BaseException) -> str:
    """A sentence a person can act on, for an exception that ended a job."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)) or "can't allocate memory" in detail:
        return f"out of memory ({detail}); try a smaller batch size or training subset"
    return detail
