"""The Train page under AppTest, with the real MNIST: a tiny run from start to finish and onto Compare, a refused second
request, cancelling, a failed run's reason, deleting a run, widgets that follow the registry, the one-click "Train to
99% now", and what an interrupted training left, completed or deleted from the page."""

from __future__ import annotations

import dataclasses
import time

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import train_options
from dashboard.sidebar import SELECTED_MODELS_KEY
from dashboard.text import target_verdict
from mnist_models import TrainConfig, load_checkpoint, load_evaluation, load_mnist
from mnist_models.devices import available_devices
from mnist_models.jobs.worker import shared_worker
from mnist_models.models.pretrained import imagenet_weights_cached
from mnist_models.paths import DATA_DIR_ENV, REPO_ROOT
from mnist_models.training.pipeline import config_of, train_and_save

TRAIN_PAGE = "pages/train_page.py"
START = "FormSubmitter:train_form-Start training"
ONE_CLICK = "one_click"
TIMEOUT = 300


def open_train_page() -> AppTest:
    """A fresh session (a new browser tab) on the Train page."""
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    app.switch_page(TRAIN_PAGE).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


@pytest.fixture
def train_page(mnist_root, monkeypatch) -> AppTest:
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    yield open_train_page()
    shared_worker().cancel()
    assert shared_worker().wait(TIMEOUT)


def start(app: AppTest, model: str, epochs: int, subset: int | None) -> AppTest:
    app.multiselect(key="train_models").set_value([model]).run()
    app.number_input(key=f"train_{model}_epochs").set_value(epochs)
    app.select_slider(key="train_subset").set_value(subset)
    app.button(key=START).click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def finish(app: AppTest) -> AppTest:
    assert shared_worker().wait(TIMEOUT)
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def markdown(app: AppTest) -> str:
    return "\n".join(element.value for element in app.markdown)


@pytest.mark.slow
def test_a_tiny_run_trains_in_the_background_and_joins_every_page(train_page):
    app = finish(start(train_page, "mlp", epochs=1, subset=1000))
    assert [header.value for header in app.subheader][:1] == ["Last training request"]
    assert "**MLP · run 1** on the 10,000 test images, next to the shipped MLP:" in markdown(app)
    comparison = app.dataframe[0].value
    assert sorted(comparison["model"]) == ["MLP", "MLP · run 1"]
    assert comparison["test accuracy"].between(0.5, 1).all(), "1,000 images for one epoch is far above chance"
    assert "run001-mlp" in app.sidebar.multiselect(key=SELECTED_MODELS_KEY).value
    app.switch_page("pages/compare_page.py").run()
    assert not app.exception and "MLP · run 1" in app.selectbox(key="roc_model").options


@pytest.mark.slow
def test_a_run_outlives_its_session_refuses_a_second_request_and_cancels_to_a_saved_run(train_page):
    app = start(train_page, "mlp", epochs=100, subset=None)
    deadline = time.monotonic() + TIMEOUT
    while not shared_worker().snapshot()[0].epoch_events:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    app.button(key=START).click().run()
    assert any("already running (MLP, epoch" in error.value for error in app.error)
    app.button(key=ONE_CLICK).click().run()
    assert any("already running (MLP, epoch" in error.value for error in app.error), "the one-click run waits too"
    assert len(shared_worker().snapshot()) == 1
    elsewhere = open_train_page()  # a new tab, same server
    assert elsewhere.subheader[0].value == "Training now" and elsewhere.button(key="cancel_training")
    app.button(key="cancel_training").click().run()
    app = finish(app)
    assert any("**MLP** was cancelled. It was saved as **MLP · run 1**" in warning.value for warning in app.warning)
    saved = app.dataframe[-1].value
    assert list(saved["model"]) == ["MLP · run 1 (cancelled)"] and 1 <= saved["epochs"][0] < 100


def test_a_failed_run_shows_its_reason(train_page):
    shared_worker().submit([TrainConfig.for_model("mlp", epochs=1, device="meta")])
    app = finish(train_page)
    assert any("**MLP failed:** device 'meta' is not available here" in error.value
               for error in app.error)
    log = next(expander for expander in app.expander if expander.label == "Log of MLP")
    assert log.proto.expanded, "a failure opens its log"
    assert "failed: device 'meta' is not available here" in log.code[0].value


@pytest.mark.slow
def test_a_saved_run_can_be_deleted_from_the_page(train_page, runs_dir):
    app = finish(start(train_page, "cnn_basic", epochs=1, subset=250))
    assert app.selectbox(key="delete_run_choice").value == "run001-cnn_basic"
    app.button(key="delete_run").click().run()
    assert not app.exception and not list(runs_dir.glob("*.pt"))
    assert any("No saved runs yet" in caption.value for caption in app.caption)
    assert "run001-cnn_basic" not in app.sidebar.multiselect(key=SELECTED_MODELS_KEY).options


def test_the_settings_follow_each_models_registry_entry(train_page):
    app = train_page
    app.multiselect(key="train_models").set_value(["rnn", "cnn_dropout", "mobilenet", "mlp"]).run()
    assert not app.exception
    assert app.selectbox(key="train_rnn_cell").options == ["rnn", "lstm", "gru"]
    assert app.number_input(key="train_rnn_hidden_size").value == 256
    assert app.slider(key="train_cnn_dropout_dropout").value == 0.5
    assert app.toggle(key="train_cnn_dropout_augment").value is True
    weights = app.selectbox(key="train_mobilenet_weights").options
    assert weights[0] == ("ImageNet" if imagenet_weights_cached("v3_small") else "random")
    assert [element.key for element in app.selectbox if element.key and element.key.startswith("train_mlp_")] == [
        "train_mlp_optimizer", "train_mlp_schedule"], "the MLP has no cell, variant or weights to choose"


@pytest.mark.slow
def test_train_to_99_now_trains_the_speed_recipe_and_shows_the_saved_runs_test_accuracy(train_page, runs_dir,
                                                                                       monkeypatch):
    asked = []

    def on_a_subset(device: str) -> TrainConfig:
        """The page's one-click config, recorded, then cut to 2,000 images: the full epoch takes half a minute on a
        busy two-core machine; the test set stays the 10,000 real images."""
        config = one_click_config(device)
        asked.append(config)
        return dataclasses.replace(config, train_subset=2000)

    one_click_config = train_options.one_click_config
    monkeypatch.setattr(train_options, "one_click_config", on_a_subset)
    app = train_page.button(key=ONE_CLICK).click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert asked == [TrainConfig.for_model("speedrun", device=available_devices()[0])], "the recipe, nothing else"
    assert app.metric[0].label == "Stopwatch"
    app = finish(app)

    _, meta = load_checkpoint(runs_dir / "run001-speedrun.pt")
    recorded = dataclasses.replace(config_of(meta), architecture={})  # records hold every architecture default
    assert meta.model == "speedrun" and recorded == dataclasses.replace(asked[0], train_subset=2000)
    metrics = load_evaluation(runs_dir / "run001-speedrun.pt").metrics
    job = shared_worker().snapshot()[0]
    assert app.metric[0].value == f"{job.ended - job.started:.1f} s", "the stopwatch stops when the job does"
    _, sentence = target_verdict(metrics.accuracy, metrics.count, meta.train_time_s, 0.99)
    assert metrics.count == 10_000 and f"{metrics.accuracy:.2%} on the 10,000 test images after" in sentence
    verdicts = [element.value for element in [*app.success, *app.warning]]
    assert f"**Speedrun CNN · run 1**: {sentence}" in verdicts
    assert app.get("plotly_chart"), "the live curve, as for any training"
    assert "run001-speedrun" in app.sidebar.multiselect(key=SELECTED_MODELS_KEY).value, "and joins every page"


def test_the_speed_models_tab_trains_its_recipe_with_label_smoothing_and_betas(train_page, monkeypatch):
    asked = []
    monkeypatch.setattr(shared_worker(), "submit", lambda configs: asked.extend(configs) or [])
    app = train_page
    app.multiselect(key="train_models").set_value(["speedrun", "mlp"]).run()
    assert app.slider(key="train_speedrun_label_smoothing").value == 0.1
    assert app.slider(key="train_mlp_label_smoothing").value == 0.0
    shown = [error.value for error in app.error]  # an earlier test's failed job, if this process ran one
    app.button(key=START).click().run()
    assert not app.exception and [error.value for error in app.error] == shown
    device = available_devices()[0]
    assert asked[0] == TrainConfig.for_model("speedrun", seed=0, device=device), "the tab's defaults are the recipe"
    assert asked[0].betas == (0.7, 0.9) and asked[1].label_smoothing == 0.0

    asked.clear()
    app.selectbox(key="train_speedrun_optimizer").set_value("sgd")
    app.slider(key="train_speedrun_label_smoothing").set_value(0.2)
    app.button(key=START).click().run()
    assert [error.value for error in app.error] == shown, "another optimizer drops the recipe's Adam betas rather "\
                                                          "than refusing them"
    assert (asked[0].optimizer, asked[0].betas, asked[0].label_smoothing) == ("sgd", None, 0.2)


def test_a_run_on_a_dataset_missing_from_the_data_folder_is_refused_naming_it(train_page, monkeypatch):
    """The form's dataset, not MNIST's split the page reads for the one click, decides whether a run can start."""
    asked = []
    monkeypatch.setattr(shared_worker(), "submit", lambda configs: asked.extend(configs) or [])
    monkeypatch.setattr("mnist_models.data.dataset_available", lambda root=None, name="mnist": name == "mnist")
    app = train_page
    app.multiselect(key="train_models").set_value(["mlp"]).run()
    app.selectbox(key="train_dataset").set_value("fashion")
    app.button(key=START).click().run()
    assert not app.exception and asked == []
    assert any("**Fashion-MNIST** is not in the data folder" in error.value for error in app.error)


def test_a_verdict_says_whether_the_target_was_reached():
    assert target_verdict(0.9921, 10_000, 4.61, 0.99) == (
        True, "99.21% on the 10,000 test images after 4.6 s of training: 99% reached.")
    assert target_verdict(0.9874, 10_000, 4.0, 0.99)[0] is False


def test_without_the_dataset_training_cannot_start(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nowhere"))
    app = open_train_page()
    assert any("MNIST dataset is not available" in warning.value for warning in app.warning)
    assert app.button(key=START).disabled


class Killed(BaseException):
    """Stands for kill -9 in the middle of epoch 2: the training's partial file is left behind."""


def leave_interrupted_run(tiny_dataset) -> None:
    def kill_in_epoch_two(event):
        if event.epoch == 2:
            raise Killed

    data = load_mnist("train", tiny_dataset), load_mnist("test", tiny_dataset)
    with pytest.raises(Killed):
        train_and_save(TrainConfig.for_model("mlp", epochs=3, batch_size=16, device="cpu"), *data,
                       progress=kill_in_epoch_two)


def test_interrupted_trainings_are_offered_for_completion_and_deletion(train_page, tiny_dataset, runs_dir):
    leave_interrupted_run(tiny_dataset)
    leave_interrupted_run(tiny_dataset)
    app = train_page.run()
    assert "Interrupted trainings" in [header.value for header in app.subheader]
    assert "MLP · run 1: interrupted after 1 of 3 epoch(s)" in markdown(app)
    assert [button.key for button in app.button if "_incomplete_" in (button.key or "")] == [
        f"{action}_incomplete_run00{number}-mlp" for number in (1, 2) for action in ("complete", "resume", "delete")]

    app.button(key="complete_incomplete_run001-mlp").click().run()
    app = finish(app)
    assert any("The interrupted **MLP · run 1** was evaluated and saved" in item.value for item in app.success)
    assert list(app.dataframe[-1].value["model"]) == ["MLP · run 1 (cancelled)"]
    app.button(key="delete_incomplete_run002-mlp").click().run()
    assert not app.exception and "Interrupted trainings" not in [header.value for header in app.subheader]
    assert sorted(path.name for path in runs_dir.iterdir()) == [".last-run", "run001-mlp.metrics.json",
                                                                 "run001-mlp.pt"]
