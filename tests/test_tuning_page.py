"""The Train page's hyperparameter search under AppTest: an empty storage, a study made in the test's runs folder
(its table, best trial and Optuna's figures, read from storage as after a restart), and a start refused while another
training runs."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from dashboard.tuning_view import NEW_STUDY, default_name, trial_rows
from mnist_models import MODEL_NAMES, TrainConfig, load_mnist
from mnist_models.jobs.worker import StudyOrder, shared_worker
from mnist_models.paths import DATA_DIR_ENV
from mnist_models.tuning import best_config, open_study, run_study, storage_url, study_summaries
from tests.test_train_page import TIMEOUT, open_train_page


@pytest.fixture
def train_page(mnist_root, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    yield open_train_page()
    shared_worker().cancel()
    assert shared_worker().wait(TIMEOUT)


def tiny_study(tiny_dataset, trials: int) -> optuna.Study:
    """Trials of one epoch on the tiny random dataset, in the storage of the test's runs folder (the page's)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = open_study("mlp")
    run_study(study, load_mnist("train", tiny_dataset, download=False), trials=trials, max_epochs=1, device="cpu")
    return study


def trials_tables(app) -> list:
    return [frame.value for frame in app.dataframe if "epochs reported" in frame.value.columns]


def captions(app) -> str:
    return "\n".join(caption.value for caption in app.caption)


def test_with_no_study_the_section_offers_a_new_one(train_page, runs_dir):
    app = train_page
    assert not (runs_dir / "studies.db").exists(), "looking for studies creates no database"
    assert "Hyperparameter search" in [header.value for header in app.subheader]
    assert app.selectbox(key="tune_study").value == NEW_STUDY and len(app.selectbox(key="tune_study").options) == 1
    assert app.selectbox(key="tune_model").value == MODEL_NAMES[0]
    assert app.text_input(key="tune_name").placeholder == MODEL_NAMES[0], "a new study is named after its model"
    assert app.button(key="tune_start").label == "Start search" and not app.button(key="tune_start").disabled
    assert not app.get("plotly_chart") and not trials_tables(app)


def test_start_creates_the_study_hands_its_trials_to_the_worker_and_shows_it(train_page, monkeypatch):
    asked = []
    monkeypatch.setattr(shared_worker(), "tune", lambda order: asked.append(order) or [])
    app = train_page
    app.selectbox(key="tune_model").set_value("cnn_basic").run()
    app.text_input(key="tune_name").input("quick")
    app.number_input(key="tune_trials").set_value(3)
    app.select_slider(key="tune_subset").set_value(1000)
    app.number_input(key="tune_max_epochs").set_value(1)
    app.button(key="tune_start").click().run()
    assert not app.exception and not app.error, [error.value for error in app.error]
    assert asked == [StudyOrder(name="quick", storage=storage_url(), model="cnn_basic", trials=3, train_subset=1000,
                                max_epochs=1)]
    assert [(summary.study_name, summary.user_attrs["model"]) for summary in study_summaries()] == [
        ("quick", "cnn_basic")], "created at once, so the page lists it before the first trial starts"
    assert app.selectbox(key="tune_study").value == "quick" and app.button(key="tune_start").label == "Add trials"
    assert any("No trials yet." in info.value for info in app.info)

    app.selectbox(key="tune_study").set_value(NEW_STUDY).run()
    app.selectbox(key="tune_model").set_value("mlp").run()
    app.text_input(key="tune_name").input("quick")
    app.button(key="tune_start").click().run()
    assert any("Not started: study 'quick'" in error.value and "searches cnn_basic, not mlp" in error.value
               for error in app.error), [error.value for error in app.error]
    assert len(asked) == 1


def test_a_stored_study_shows_its_trials_best_and_figures(train_page, tiny_dataset, monkeypatch):
    study = tiny_study(tiny_dataset, trials=1)
    app = train_page.run()
    assert "mlp (MLP)" in app.selectbox(key="tune_study").options
    app.selectbox(key="tune_study").set_value("mlp").run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert app.button(key="tune_start").label == "Add trials"
    assert "Needs 2 complete trials; there is one." in captions(app)
    assert len(app.get("plotly_chart")) == 2, "history and parallel coordinates"

    run_study(study, load_mnist("train", tiny_dataset, download=False), trials=2, max_epochs=1, device="cpu")
    app.run()
    (table,) = trials_tables(app)
    assert list(table["trial"]) == [0, 1, 2] and set(table["state"]) == {"complete"}
    assert list(table["validation accuracy"]) == [trial.value for trial in study.trials]
    assert {"lr", "batch_size", "epochs", "dropout", "width"} <= set(table.columns)
    best = max(study.trials, key=lambda trial: trial.value)
    assert app.metric[0].label == "Best so far" and app.metric[0].value == f"{best.value:.2%}"
    assert f"**Trial {best.number}**" in "\n".join(element.value for element in app.markdown)
    assert len(app.get("plotly_chart")) == 3 and "Needs 2" not in captions(app)
    saving = []
    monkeypatch.setattr(shared_worker(), "save_best", lambda order, config: saving.append((order, config)) or [])
    app.button(key="tune_save_best").click().run()
    assert not app.exception and not app.error
    assert saving == [(StudyOrder(name="mlp", storage=storage_url(), model="mlp"), best_config(study))]


@pytest.mark.slow
def test_starting_while_training_is_refused_and_leaves_no_study(train_page):
    shared_worker().submit([TrainConfig.for_model("mlp", epochs=100, device="cpu")])
    deadline = time.monotonic() + TIMEOUT
    while not shared_worker().snapshot()[0].events:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    app = train_page.run()
    app.button(key="tune_start").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert any(error.value.startswith("Not started: A training request is already running (MLP, epoch")
               for error in app.error), [error.value for error in app.error]
    assert study_summaries() == [] and app.selectbox(key="tune_study").value == NEW_STUDY


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # a trial asked for outside optimize
def test_a_running_trial_shows_its_last_reported_accuracy_and_time_so_far(tiny_dataset):
    study = tiny_study(tiny_dataset, trials=1)
    trial = study.ask()
    trial.report(0.5, 1)
    (_, row) = trial_rows(study)
    assert row["state"] == "running" and row["validation accuracy"] == 0.5 and row["duration (s)"] >= 0
    assert study.trials[0].state is TrialState.COMPLETE and default_name("mlp", {"mlp", "mlp-2"}) == "mlp-3"
