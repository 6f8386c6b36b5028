"""The Explain page under AppTest: a digit handed over from Draw or a test image (also opened from Compare's
galleries), no input at all, models without a convolution, a saved run, and each of its four views with its sliders."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from benchmarks.common import canvas_stroke
from dashboard.explain import METHOD_TITLES
from dashboard.handoff import DRAWING, TEST_IMAGE
from dashboard.sidebar import SELECTED_MODELS_KEY
from mnist_models import MODEL_NAMES, TrainConfig, load_mnist, train
from mnist_models.paths import DATA_DIR_ENV, REPO_ROOT
from mnist_models.training.pipeline import save_trained

APP = str(REPO_ROOT / "app.py")
EXPLAIN = "pages/explain_page.py"


def open_explain(app: AppTest | None = None) -> AppTest:
    app = app or AppTest.from_file(APP, default_timeout=180).run()
    app.switch_page(EXPLAIN).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def texts(app: AppTest) -> str:
    return "\n".join(str(element.value) for kind in ("markdown", "info", "warning", "caption")
                     for element in getattr(app, kind))


def captions(app: AppTest) -> list[str]:
    return [caption for image in app.get("image") for caption in image.captions]


def show(app: AppTest, view: str) -> AppTest:
    next(radio for radio in app.radio if view in radio.options).set_value(view).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


@pytest.fixture
def drawn_one() -> AppTest:
    """A session that drew a vertical stroke (a 1) on Draw and then opened Explain."""
    app = AppTest.from_file(APP, default_timeout=180).run()
    app.switch_page("pages/draw_page.py").run()
    app.session_state["canvas"] = canvas_stroke(140, 50, 140, 230)
    app.run()
    assert len(app.metric) == len(MODEL_NAMES)
    return open_explain(app)


def test_the_drawing_from_draw_is_explained_by_every_model(drawn_one):
    app = drawn_one
    assert app.radio[0].value == DRAWING and "your drawing" in captions(app)
    assert "**CNN** reads **1**" in texts(app)
    assert all(f"**{method}**" in texts(app) for method in METHOD_TITLES.values())
    convolutional = [name for name in MODEL_NAMES if name not in ("mlp", "rnn")]
    # the digit, then a row of maps per method: integrated gradients, saliency, Grad-CAM
    assert [len(image.captions) for image in app.get("image")] == [1, len(MODEL_NAMES), len(MODEL_NAMES),
                                                                    len(convolutional)]
    assert "CNN: 1 (100%)" in captions(app)


def test_models_without_a_convolution_say_why_grad_cam_is_absent(drawn_one):
    absent = [caption for caption in texts(drawn_one).splitlines() if caption.startswith("Absent for")]
    assert absent == [absent[0]] and absent[0].startswith("Absent for MLP, RNN: ") and "no convolution" in absent[0]


def test_asking_why_not_another_digit_changes_the_target(drawn_one):
    app = drawn_one
    app.selectbox[0].set_value("7").run()
    assert not app.exception
    assert sum(caption.startswith("CNN: 7 at ") for caption in captions(app)) == 3  # in each method's row


def test_a_test_image_can_be_chosen_by_index(mnist_root, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    app = open_explain()
    assert app.radio[0].value == TEST_IMAGE  # nothing drawn: the test images are the default
    app.number_input[0].set_value(7).run()
    assert not app.exception and "test image #7, labelled 9" in captions(app)


def test_with_no_input_the_page_gives_a_hint_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nowhere"))
    app = open_explain()
    assert any("MNIST dataset is not available" in warning.value for warning in app.warning)
    app.radio[0].set_value(DRAWING).run()
    assert not app.exception
    assert any("Nothing drawn yet" in info.value for info in app.info) and not app.get("image")


def test_each_architecture_is_shown_reading_in_its_own_way(drawn_one):
    app = show(drawn_one, "How each one reads it")
    assert "RNN reads the digit one row at a time" in texts(app) and "settled on **1**" in texts(app)
    charts = [chart.proto.id for chart in app.get("plotly_chart")]
    assert any("step_chart_rnn" in chart for chart in charts) and any("step_chart_crnn" in chart for chart in charts)
    assert "CNN + GRU reads the digit one column of features (4 pixels) at a time, left to right" in texts(app)
    assert any(caption.startswith("unit ") for caption in captions(app))  # the MLP's strongest units
    first_layer = "convolution 1 of 2 (features.0): 32 maps of 26×26"  # the CNN's first layer
    assert any(caption.startswith(first_layer) for caption in captions(app))
    app.slider(key="steps_rnn").set_value(3).run()
    assert not app.exception and any(caption.startswith("after row 3:") for caption in captions(app))


def test_what_if_sliders_change_the_answers(drawn_one):
    app = show(drawn_one, "What if…")
    table = app.dataframe[0].value
    assert list(table["still right?"]) == ["yes"] * len(MODEL_NAMES)
    next(slider for slider in app.slider if slider.label == "Rotate (°)").set_value(90).run()
    assert not app.exception
    rotated = app.dataframe[0].value
    assert (rotated["still right?"] == "changed").sum() >= len(MODEL_NAMES) // 2  # a 1 on its side is no 1


def test_the_adversarial_view_attacks_every_model(drawn_one):
    app = show(drawn_one, "Adversarial attack")
    assert "models change their answer" in texts(app)
    assert len([c for c in captions(app) if c == "its perturbation"]) == len(MODEL_NAMES)
    next(slider for slider in app.slider if slider.label.startswith("ε")).set_value(0.0).run()
    assert "**0 of" in texts(app)
    app.toggle(key="flip_search").set_value(True).run()
    assert not app.exception and ("Flipped first to last" in texts(app) or "No model flipped" in texts(app))


def test_only_the_models_selected_in_the_sidebar_are_explained(drawn_one):
    app = drawn_one
    app.sidebar.multiselect(key=SELECTED_MODELS_KEY).set_value(["mlp", "cnn"]).run()
    assert [len(image.captions) for image in app.get("image")] == [1, 2, 2, 1]


def test_a_gallery_on_compare_opens_its_image_in_explain(mnist_root, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    app = AppTest.from_file(APP, default_timeout=180).run()
    app.switch_page("pages/compare_page.py").run()
    picked = app.selectbox(key="mistakes_explain_pick").value
    app.button(key="mistakes_explain").click().run()
    assert not app.exception
    assert app.radio[0].value == TEST_IMAGE and any(c.startswith(f"test image #{picked},") for c in captions(app))


def test_a_saved_run_is_explained_like_a_shipped_model(tiny_dataset, monkeypatch):
    train_data = load_mnist("train", tiny_dataset, download=False)
    test_data = load_mnist("test", tiny_dataset, download=False)
    result = train(TrainConfig.for_model("rnn", epochs=1, batch_size=16, device="cpu"), data=train_data)
    run = save_trained(result, test_data).run
    monkeypatch.setenv(DATA_DIR_ENV, str(tiny_dataset))
    app = open_explain()
    assert "test image #0, labelled 0" in captions(app)
    assert sum(caption.startswith(f"{run.title}: ") for caption in captions(app)) == 2  # its IG and Saliency maps
    app = show(app, "How each one reads it")
    assert f"{run.title} reads the digit one row at a time" in texts(app)
    assert any(f"step_chart_{run.run_id}" in chart.proto.id for chart in app.get("plotly_chart"))
