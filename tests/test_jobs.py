"""The background worker on its own, with the tiny IDX dataset: start, progress, cancel, failure, queueing, refusal.
Its requests run in a training process: data loaders handed to it must be picklable (module-level)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from dashboard.text import format_duration, progress_line
from mnist_models import TrainConfig, load_mnist, train
from mnist_models.cli import EXIT_BUSY, main
from mnist_models.evidence import CORRUPTIONS
from mnist_models.feature_space import map_path
from mnist_models.jobs import child
from mnist_models.jobs.child import EVIDENCE_ENV
from mnist_models.jobs.worker import JobState, TrainingWorker, WorkerBusy, describe_failure
from mnist_models.store.evidence_records import evidence_path, load_evidence
from mnist_models.store.runs import list_runs
from mnist_models.training.locking import TrainingBusy
from mnist_models.training.pipeline import save_trained
from mnist_models.training.stopping import StopRequest

pytestmark = pytest.mark.slow  # the training worker starts its own training process

TIMEOUT = 120


def config(model: str = "mlp", **overrides) -> TrainConfig:
    return TrainConfig.for_model(model, **{"epochs": 2, "batch_size": 16, "device": "cpu", **overrides})


@dataclass(frozen=True)
class TinyLoader:
    """Loads the tiny IDX dataset whatever folder the worker names."""

    root: Path

    def __call__(self, dataset, split, root):
        return load_mnist(split, self.root, download=False)


@pytest.fixture
def worker(tiny_dataset):
    worker = TrainingWorker(load_data=TinyLoader(tiny_dataset))
    yield worker
    worker.cancel()
    assert worker.wait(TIMEOUT), "the worker did not stop"


@dataclass(frozen=True)
class GatedLoader:
    """A data loader that holds the training process at 'loading' until the test opens the gate (creates a file):
    a deterministic busy worker."""

    root: Path
    gate: Path

    def __call__(self, dataset, split, root):
        deadline = time.monotonic() + TIMEOUT
        while not self.gate.exists():
            assert time.monotonic() < deadline, "the gate was never opened"
            time.sleep(0.01)
        return load_mnist(split, self.root, download=False)

    def open(self) -> None:
        self.gate.touch()

    def close(self) -> None:
        self.gate.unlink(missing_ok=True)


def gated(root: Path) -> GatedLoader:
    return GatedLoader(root, root / "gate")


def wait_for(predicate, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_request_trains_reports_progress_and_saves_a_run(worker, runs_dir):
    jobs = worker.submit([config()])
    assert [job.state for job in jobs] in ([JobState.QUEUED], [JobState.RUNNING])
    assert worker.wait(TIMEOUT)
    (job,) = worker.snapshot()
    assert job.state is JobState.FINISHED and job.error is None
    assert [event.epoch for event in job.epoch_events] == [1, 2]
    assert job.latest.fraction == pytest.approx(1.0) and all(event.images_per_s > 0 for event in job.events)
    assert job.run_id == "run001-mlp" and job.run_title == "MLP · run 1"
    assert 0 <= job.metrics.accuracy <= 1 and job.started <= job.ended
    assert [run.run_id for run in list_runs(runs_dir)] == ["run001-mlp"]
    assert job.log[0].startswith("training MLP: 2 epochs") and "saved as run001-mlp" in job.log[-1]
    assert sum("validation accuracy" in line for line in job.log) == 2


def test_the_models_of_a_request_run_one_after_another(worker):
    worker.submit([config("mlp"), config("cnn_basic"), config("rnn", architecture={"hidden_size": 16})])
    assert worker.wait(TIMEOUT)
    jobs = worker.snapshot()
    assert [job.state for job in jobs] == [JobState.FINISHED] * 3
    assert [job.run_id for job in jobs] == ["run001-mlp", "run002-cnn_basic", "run003-rnn"]
    for earlier, later in zip(jobs, jobs[1:], strict=False):
        assert earlier.ended <= later.started, "two jobs overlapped"


def test_a_second_request_is_refused_while_one_is_active(tiny_dataset):
    loader = gated(tiny_dataset)
    worker = TrainingWorker(load_data=loader)
    worker.submit([config()])
    wait_for(lambda: worker.snapshot()[0].state is JobState.RUNNING)
    with pytest.raises(WorkerBusy, match=r"already running \(MLP\)"):
        worker.submit([config("cnn")])
    assert len(worker.snapshot()) == 1, "the refused request left the running one alone"
    loader.open()
    assert worker.wait(TIMEOUT) and worker.snapshot()[0].state is JobState.FINISHED
    worker.submit([config()])  # accepted once the first has finished
    assert worker.wait(TIMEOUT)


def test_another_worker_or_the_command_line_is_refused_while_one_trains(tiny_dataset, runs_dir, capsys):
    loader = gated(tiny_dataset)
    first, second = TrainingWorker(load_data=loader), TrainingWorker(load_data=loader)
    first.submit([config()])
    with pytest.raises(TrainingBusy, match=r"Another digit-lab training job \(the dashboard's training worker, "
                                           r"pid \d+\) is running on this machine"):
        second.submit([config()])
    assert main(["train", "--model", "mlp", "--epochs", "1", "--data-dir", str(tiny_dataset),
                 "--output-dir", str(runs_dir / "cli")]) == EXIT_BUSY
    assert "one runs at a time" in capsys.readouterr().err and not (runs_dir / "cli").exists()
    loader.open()
    assert first.wait(TIMEOUT)
    second.submit([config()])  # the lock was released with the request
    assert second.wait(TIMEOUT) and len(list_runs(runs_dir)) == 2


def test_cancelling_keeps_the_finished_epochs_as_a_cancelled_run(worker):
    worker.submit([config(epochs=100_000), config("cnn")])
    wait_for(lambda: len(worker.snapshot()[0].epoch_events) >= 1)
    assert worker.cancel()
    assert worker.wait(TIMEOUT)
    running, queued = worker.snapshot()
    assert running.state is JobState.CANCELLED and running.run_id == "run001-mlp"
    assert 1 <= len(running.epoch_events) < 100_000
    assert queued.state is JobState.CANCELLED and queued.run_id is None and queued.started is None
    assert queued.log == ["cancelled before it started"]
    assert not worker.cancel(), "nothing left to cancel"


def test_a_job_cancelled_before_its_first_epoch_saves_nothing(tiny_dataset, runs_dir):
    loader = gated(tiny_dataset)
    worker = TrainingWorker(load_data=loader)
    worker.submit([config()])
    wait_for(lambda: worker.snapshot()[0].state is JobState.RUNNING)
    worker.cancel()
    loader.open()
    assert worker.wait(TIMEOUT)
    (job,) = worker.snapshot()
    assert job.state is JobState.CANCELLED and job.run_id is None and list_runs(runs_dir) == []
    assert "nothing to save" in job.log[-1]


def test_a_failure_ends_only_its_job_with_the_reason(tiny_dataset, runs_dir):
    worker = TrainingWorker()  # the real loader, pointed at a folder without MNIST
    worker.submit([config()], data_dir=tiny_dataset / "missing")
    assert worker.wait(TIMEOUT)
    (job,) = worker.snapshot()
    assert job.state is JobState.FAILED and "MNIST" in job.error and list_runs(runs_dir) == []
    assert job.log[-1].startswith("failed: ")

    good = TrainingWorker(load_data=TinyLoader(tiny_dataset))
    good.submit([config(device="meta"), config()])
    assert good.wait(TIMEOUT)
    failed, finished = good.snapshot()
    assert failed.state is JobState.FAILED and failed.error.startswith("device 'meta' is not available here")
    assert finished.state is JobState.FINISHED and [run.run_id for run in list_runs(runs_dir)] == ["run001-mlp"]


def test_a_cancel_meant_for_an_earlier_request_does_not_stop_the_next(tiny_dataset):
    loader = gated(tiny_dataset)
    loader.open()
    worker = TrainingWorker(load_data=loader)
    first = worker.submit([config()])[0].request
    assert worker.wait(TIMEOUT)
    loader.close()
    second = worker.submit([config()])[0].request
    assert second != first and not worker.cancel(request=first), "a stale Cancel button must do nothing"
    loader.open()
    assert worker.wait(TIMEOUT) and worker.snapshot()[0].state is JobState.FINISHED


def test_an_empty_request_is_refused(worker):
    with pytest.raises(ValueError, match="at least one model"):
        worker.submit([])


def test_failure_messages_and_progress_lines_read_well(worker):
    assert "smaller batch size" in describe_failure(torch.OutOfMemoryError("CUDA out of memory"))
    assert "smaller batch size" in describe_failure(MemoryError())
    assert describe_failure(RuntimeError("")) == "RuntimeError"
    assert [format_duration(s) for s in (0, 75.4, 3725)] == ["0:00", "1:15", "1 h 02 min"]
    worker.submit([config()])
    assert worker.wait(TIMEOUT)
    fraction, text = progress_line(worker.snapshot()[0])
    assert fraction == pytest.approx(1.0) and text.startswith("MLP: epoch 2/2 · 100% · ") and "left" not in text


def test_a_saved_run_gets_its_evidence_after_its_job_finished(worker, runs_dir, monkeypatch):
    monkeypatch.setenv(EVIDENCE_ENV, "calibration,robustness")
    worker.submit([config(epochs=1)])
    assert worker.wait(TIMEOUT)
    (job,) = worker.snapshot()
    assert job.state is JobState.FINISHED and job.log[-1] == "evidence saved: see the Evidence page"
    (run,) = list_runs(runs_dir)
    evidence = load_evidence(evidence_path(run.checkpoint))
    assert evidence.calibration is not None and evidence.selective is not None and set(evidence.robustness) == set(
        CORRUPTIONS)
    assert not map_path(run.checkpoint).exists()  # not asked for


def test_a_run_whose_evidence_fails_stays_saved_with_the_reason(worker, runs_dir, monkeypatch):
    monkeypatch.setenv(EVIDENCE_ENV, "robustness,astrology")
    worker.submit([config(epochs=1)])
    assert worker.wait(TIMEOUT)
    (job,) = worker.snapshot()
    assert job.state is JobState.FINISHED and "astrology" in job.log[-1] and "could not be computed" in job.log[-1]
    assert [run.run_id for run in list_runs(runs_dir)] == ["run001-mlp"]


def test_a_stop_during_a_run_s_evidence_ends_it_and_says_how_to_compute_it(tiny_dataset, runs_dir, monkeypatch):
    monkeypatch.setenv(EVIDENCE_ENV, "robustness")
    train_data, test_data = (load_mnist(split, tiny_dataset, download=False) for split in ("train", "test"))
    saved = save_trained(train(config(epochs=1), data=train_data), test_data)
    stop, notes = StopRequest(), []
    stop.set()
    child._add_evidence(saved, 0, lambda dataset, split: {"train": train_data, "test": test_data}[split], stop,
                        lambda index, **update: notes.append(update.get("note")))
    assert notes[-1] == "the run's evidence was stopped; `digit-lab evaluate` computes it"
    assert not evidence_path(saved.checkpoint).exists()
