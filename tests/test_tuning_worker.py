"""A hyperparameter study run by the dashboard's background worker, with the real MNIST on a small subset: it runs
to the finish with each trial in the job's log, a cancel fails the trial in progress and keeps the study, a second
request is refused while it runs; and (on the tiny dataset) the best trial is saved as a run."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from mnist_models import load_mnist
from mnist_models.jobs.worker import JobState, StudyOrder, TrainingWorker, WorkerBusy
from mnist_models.store.runs import list_runs
from mnist_models.tuning import best_config, load_study, open_study, run_study, storage_url
from tests.test_jobs import TinyLoader

pytestmark = pytest.mark.slow  # studies run in the training worker's process

TIMEOUT = 120


@pytest.fixture
def worker():
    worker = TrainingWorker()
    yield worker
    worker.cancel()
    assert worker.wait(TIMEOUT), "the worker did not stop"


def order(trials: int, train_subset: int | None = 1000) -> StudyOrder:
    return StudyOrder(name="mlp-test", storage=storage_url(), model="mlp", trials=trials, train_subset=train_subset,
                      max_epochs=1, device="cpu")


def test_a_study_runs_its_trials_in_the_background_and_is_kept_in_the_storage(worker, mnist_root):
    (job,) = worker.tune(order(trials=2), data_dir=mnist_root)
    assert job.title == "MLP study mlp-test"
    assert worker.wait(TIMEOUT)
    (job,) = worker.snapshot()
    assert job.state is JobState.FINISHED and job.error is None, job.log
    assert sum(line.startswith("trial ") for line in job.log) == 2 and job.epoch_events, "trials and their epochs"
    study = load_study("mlp-test")  # from the storage in the runs folder, as a restarted server reads it
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 2
    assert all(0.2 < trial.value <= 1 for trial in study.trials), "well above chance (10%) after an epoch"


def test_the_best_trial_is_saved_as_a_run_by_the_worker(tiny_dataset, runs_dir):
    """On the tiny dataset: saving retrains on every training image, which on the real MNIST takes minutes here."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = open_study("mlp")
    run_study(study, load_mnist("train", tiny_dataset, download=False), trials=2, max_epochs=1, device="cpu")
    worker = TrainingWorker(load_data=TinyLoader(tiny_dataset))
    (saving,) = worker.save_best(StudyOrder(name="mlp", storage=storage_url(), model="mlp"), best_config(study))
    assert saving.config.train_subset is None and worker.wait(TIMEOUT)
    (saving,) = worker.snapshot()
    assert saving.state is JobState.FINISHED and saving.run_id == "run001-mlp", saving.log
    assert "retraining the best trial of study mlp on every training image" in saving.log[0]
    assert [run.run_id for run in list_runs(runs_dir)] == ["run001-mlp"]
    assert load_study("mlp").user_attrs["saved_run"] == {"run": "run001-mlp", "trial": study.best_trial.number}


def test_cancelling_fails_the_trial_in_progress_and_keeps_the_study(worker, mnist_root):
    worker.tune(order(trials=5, train_subset=None), data_dir=mnist_root)
    deadline = time.monotonic() + TIMEOUT
    while not worker.snapshot()[0].events:
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)
    with pytest.raises(WorkerBusy, match=r"already running \(MLP study mlp-test"):
        worker.tune(order(trials=1), data_dir=mnist_root)
    assert worker.cancel()
    assert worker.wait(TIMEOUT)
    (job,) = worker.snapshot()
    assert job.state is JobState.CANCELLED and "cancelled after 1 trial(s)" in job.log[-1], job.log
    assert [trial.state for trial in load_study("mlp-test").trials] == [TrialState.FAIL]
