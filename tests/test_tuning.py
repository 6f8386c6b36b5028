"""Hyperparameter search: a tiny study runs, prunes, survives a restart and a cancelled trial, and its best trial
becomes a run with a test evaluation; every registry model's search space yields configs that build."""

from __future__ import annotations

import os
import signal
import time

import optuna
import pytest
import torch
from optuna.trial import FixedTrial, TrialState

from mnist_models import MODEL_NAMES, load_mnist, tuning
from mnist_models.cli import main
from mnist_models.models.registry import get_spec
from mnist_models.serving.catalog import load_catalog
from mnist_models.training.locking import acquire_training_lock
from mnist_models.tuning import (
    AUGMENT_STRENGTHS,
    BATCH_SIZES,
    WIDTH_SCALES,
    best_config,
    open_study,
    run_study,
    save_best_trial,
    search_space,
    storage_url,
)

MNIST_SUBSET = 600  # real digits for the pruning case: enough for learning rates to make a clear difference


@pytest.fixture
def tiny_data(tiny_dataset):
    return load_mnist("train", tiny_dataset, download=False), load_mnist("test", tiny_dataset, download=False)


@pytest.fixture
def storage(tmp_path):
    return str(tmp_path / "studies" / "tune.db")


class CancelAfter:
    """A cancel flag that turns on at its ``calls``-th check (the loop checks once per batch)."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def is_set(self) -> bool:
        self.calls -= 1
        return self.calls <= 0


def test_a_tiny_study_records_its_trials_with_params_within_the_search_space(tiny_data, storage):
    study = open_study("mlp", storage=storage)
    ran = run_study(study, tiny_data[0], trials=3, max_epochs=2, device="cpu")
    space = search_space("mlp", max_epochs=2)
    assert [trial.number for trial in ran] == [0, 1, 2] and len(study.trials) == 3
    for trial in ran:
        assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
        params, config = trial.params, trial.user_attrs["config"]
        assert space.lr[0] <= params["lr"] <= space.lr[1] and params["batch_size"] in BATCH_SIZES
        assert 1 <= params["epochs"] <= 2 and params["augment_strength"] in AUGMENT_STRENGTHS
        assert 0 <= params["dropout"] <= 0.6 and params["width"] in WIDTH_SCALES
        assert config["lr"] == params["lr"] and config["architecture"]["dropout"] == params["dropout"]
        assert config["augment"] == (params["augment_strength"] > 0)
        assert config["architecture"]["hidden_sizes"] == [round(256 * params["width"]), round(128 * params["width"])]
        steps = sorted(trial.intermediate_values)  # aligned at the end of the schedule: the last epoch is step 2
        assert steps == list(range(3 - params["epochs"], 3 - params["epochs"] + len(steps)))
        if trial.state == TrialState.COMPLETE:
            assert steps[-1] == 2 and trial.value == trial.intermediate_values[2]


def test_the_median_pruner_stops_a_trial_worse_than_the_others_at_the_same_epoch(mnist_root, storage):
    study = open_study("mlp", storage=storage)
    good = {"lr": 3e-3, "batch_size": 32, "epochs": 3, "augment_strength": 0.0, "dropout": 0.1, "width": 1.0}
    bad = {**good, "lr": 2e-4, "batch_size": 256}
    for params in (good, {**good, "dropout": 0.2}, bad, {**bad, "epochs": 2}):
        study.enqueue_trial(params)
    run_study(study, load_mnist("train", mnist_root), trials=4, max_epochs=3, train_subset=MNIST_SUBSET,
              device="cpu")
    states = [trial.state for trial in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    assert list(study.trials[2].intermediate_values) == [1, 2]  # epoch 1 is never pruned, and it stopped after 2
    assert study.trials[2].intermediate_values[2] < min(trial.intermediate_values[2] for trial in study.trials[:2])
    assert study.trials[3].value < min(trial.value for trial in study.trials[:2])  # worse, but its last epoch


def test_a_study_resumes_after_a_restart_and_a_cancelled_trial_leaves_it_intact(tiny_data, storage):
    first = open_study("mlp", storage=storage)
    run_study(first, tiny_data[0], trials=2, max_epochs=1, device="cpu")
    before = [(trial.number, trial.params, trial.value) for trial in first.trials]
    del first  # a restart: nothing but the database file is left

    interrupted = open_study("mlp", storage=storage)
    interrupted.enqueue_trial({"lr": 2e-3, "batch_size": 32, "epochs": 2, "augment_strength": 0.0, "dropout": 0.2,
                               "width": 1.0})
    ran = run_study(interrupted, tiny_data[0], trials=5, device="cpu", cancel=CancelAfter(3))
    assert [(trial.number, trial.state) for trial in ran] == [(2, TrialState.FAIL)]  # stopped in its 2nd batch

    resumed = open_study("mlp", storage=storage)
    assert [(trial.number, trial.params, trial.value) for trial in resumed.trials[:2]] == before
    (extra,) = run_study(resumed, tiny_data[0], trials=1, max_epochs=1, device="cpu")
    assert extra.number == 3 and extra.state == TrialState.COMPLETE
    assert extra.params != resumed.trials[0].params  # the sampler's seed moved on: no repeat of the first draws


def test_a_trial_left_running_by_a_killed_process_is_failed_when_the_study_runs_again(tiny_data, storage, monkeypatch):
    monkeypatch.setattr(tuning, "HEARTBEAT_S", 1)
    monkeypatch.setattr(tuning, "GRACE_S", 1)
    study = open_study("mlp", storage=storage)
    backend = optuna.storages.RDBStorage(storage_url(storage))
    orphan = backend.create_new_trial(backend.get_study_id_from_name("mlp"))  # its process then died mid-trial
    backend.record_heartbeat(orphan)
    time.sleep(2.5)  # SQLite keeps heartbeats to the second: 2.5 s is always more than 1 s of grace
    run_study(study, tiny_data[0], trials=1, max_epochs=1, device="cpu")
    assert [trial.state for trial in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]


def test_the_best_trial_is_saved_as_a_run_with_a_test_evaluation(tiny_data, storage):
    study = open_study("mlp", storage=storage)
    run_study(study, tiny_data[0], trials=2, max_epochs=1, train_subset=40, device="cpu")
    saved = save_best_trial(study, *tiny_data)
    best = best_config(study).to_dict()
    assert best["train_subset"] == 40 and best["lr"] == study.best_trial.params["lr"]
    architecture = best.pop("architecture")
    assert saved.meta.training == {**best, "train_subset": None}  # the trial's config, on every training image
    assert saved.meta.architecture["dropout"] == architecture["dropout"]
    (entry,) = [entry for entry in load_catalog() if entry.name == saved.run.run_id]
    assert entry.is_run and entry.evaluation is not None and entry.evaluation.metrics.count == 20
    assert open_study("mlp", storage=storage).user_attrs["saved_run"] == {"run": saved.run.run_id,
                                                                          "trial": study.best_trial.number}


def test_the_command_line_tunes_lists_shows_and_saves_the_best_trial(capsys, tiny_dataset, runs_dir):
    common = ["--data-dir", str(tiny_dataset), "--device", "cpu"]
    assert main(["tune", "--model", "mlp", "--trials", "2", "--train-subset", "40", "--max-epochs", "1",
                 *common]) == 0
    err = capsys.readouterr().err
    assert "trial   0 complete" in err and "trial   1 complete" in err
    assert (runs_dir / "studies.db").is_file()
    assert main(["tune", "--list", *common]) == 0
    assert "mlp" in capsys.readouterr().out
    assert main(["tune", "--model", "mlp", "--trials", "0", "--save-best", *common]) == 0
    assert "saved as run001-mlp: test accuracy" in capsys.readouterr().err
    assert main(["tune", "--show", "mlp"]) == 0
    shown = capsys.readouterr().out
    assert "2 trials" in shown and "best: trial" in shown and "saved as run001-mlp" in shown
    assert "run001-mlp" in [entry.name for entry in load_catalog()]
    assert main(["tune", "--show", "nothing"]) == 2
    with acquire_training_lock("another training"):
        assert main(["tune", "--model", "mlp", "--trials", "1", *common]) == 75


def test_sigterm_during_a_study_ends_it_with_exit_130_keeping_its_trials(capsys, tiny_dataset, monkeypatch):
    describe = tuning.describe_trial

    def describe_then_terminate(trial):  # the first trial's line is printed, then the signal arrives
        os.kill(os.getpid(), signal.SIGTERM)
        return describe(trial)

    monkeypatch.setattr(tuning, "describe_trial", describe_then_terminate)
    args = ["tune", "--model", "mlp", "--trials", "3", "--max-epochs", "1", "--data-dir", str(tiny_dataset)]
    assert main(args) == 130
    assert "stopped by SIGTERM: the study keeps its 1 complete and pruned trials" in capsys.readouterr().err
    assert [trial.state for trial in open_study("mlp").trials] == [TrialState.COMPLETE]


def test_a_storage_path_becomes_an_sqlite_url_and_a_url_is_kept(tmp_path, runs_dir):
    assert storage_url() == f"sqlite:///{runs_dir / 'studies.db'}"
    assert storage_url(tmp_path / "a.db") == f"sqlite:///{tmp_path / 'a.db'}"
    assert storage_url("postgresql://host/db") == "postgresql://host/db"


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_model_has_a_search_space_whose_extremes_build(model):
    space = search_space(model)
    spec = get_spec(model)
    assert (space.dropout is not None) == ("dropout" in spec.architecture_defaults)
    scales = (min(space.width_scales), max(space.width_scales)) if space.width_scales else (None,)
    for scale in scales:
        params = {"lr": space.lr[1], "batch_size": BATCH_SIZES[0], "epochs": space.epochs[1], "augment_strength": 1.0,
                  **({"dropout": space.dropout[1]} if space.dropout else {}), **({"width": scale} if scale else {})}
        config = space.config_for(space.suggest(FixedTrial(params)))
        network = spec.build(**config.architecture).eval()
        assert network(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    sampled = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    assert space.config_for(space.suggest(sampled)).model == model
