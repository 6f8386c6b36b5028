"""Every dashboard page under Streamlit's AppTest: with and without the dataset, with broken checkpoints, and the
interactions AppTest can drive (the canvas is fed the PNG it would send after a stroke)."""

from __future__ import annotations

import json
import shutil
import tomllib

import pytest
from streamlit.testing.v1 import AppTest

from benchmarks.common import canvas_stroke
from dashboard.sidebar import DATASET_KEY, SELECTED_MODELS_KEY
from mnist_models import MODEL_NAMES, TrainConfig, load_checkpoint, load_mnist, save_checkpoint
from mnist_models.data import load_dataset
from mnist_models.models.registry import get_spec
from mnist_models.paths import CHECKPOINT_DIR, CHECKPOINT_DIR_ENV, DATA_DIR_ENV, REPO_ROOT
from mnist_models.training.pipeline import train_and_save

APP = str(REPO_ROOT / "app.py")
PAGES = ["pages/overview_page.py", "pages/draw_page.py", "pages/dataset_page.py", "pages/compare_page.py",
         "pages/train_page.py", "pages/explain_page.py", "pages/evidence_page.py", "pages/room_page.py"]


def open_page(page: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120).run()
    if page != PAGES[0]:
        app.switch_page(page).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def texts(app: AppTest) -> str:
    return "\n".join(str(element.value) for kind in ("markdown", "info", "warning", "success", "error", "caption")
                     for element in getattr(app, kind))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_the_dataset(page, mnist_root, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    app = open_page(page)
    assert app.title and app.sidebar.multiselect(key=SELECTED_MODELS_KEY).value == list(MODEL_NAMES)


def test_overview_shows_the_leaderboard_and_a_measured_recommendation():
    app = open_page(PAGES[0])
    assert len(app.dataframe[0].value) == len(MODEL_NAMES)
    recommended = [header.value for header in app.subheader if header.value.startswith("Recommended: ")]
    assert recommended and "Rule: What the room sees decides first" in texts(app)


def test_without_the_dataset_overview_and_draw_work_and_the_others_explain(tmp_path, monkeypatch):
    """Evidence's first section (robustness) reads saved files only; its sections with images say what they need."""
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nowhere"))
    for page in [*PAGES[:2], "pages/evidence_page.py"]:
        assert not any("not available" in warning.value for warning in open_page(page).warning)
    for page in PAGES[2:6]:
        app = open_page(page)
        assert any("MNIST dataset is not available" in w.value and DATA_DIR_ENV in w.value for w in app.warning)


def test_a_missing_and_a_corrupt_checkpoint_only_disable_those_models(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    shutil.copytree(CHECKPOINT_DIR, folder)
    (folder / "rnn.pt").unlink()
    (folder / "mlp.pt").write_bytes(b"not a checkpoint at all")
    monkeypatch.setenv(CHECKPOINT_DIR_ENV, str(folder))
    app = open_page(PAGES[0])
    warnings = "\n".join(warning.value for warning in app.warning)
    assert "RNN** is not shown: no checkpoint" in warnings and "MLP** is not shown" in warnings
    assert len(app.dataframe[0].value) == len(MODEL_NAMES) - 2
    for page in (PAGES[1], PAGES[3]):  # Draw and Compare, which show models, say which they leave out (issue 9)
        other = open_page(page)
        warnings = "\n".join(warning.value for warning in other.warning)
        assert "RNN** is not shown: no checkpoint" in warnings and "MLP** is not shown" in warnings, page
    draw = open_page(PAGES[1])
    draw.session_state["canvas"] = canvas_stroke(140, 50, 140, 230)
    draw.run()
    assert len(draw.metric) == len(MODEL_NAMES) - 2


@pytest.mark.parametrize("page", PAGES)
def test_a_checkpoint_with_minimal_metadata_and_a_partial_evaluation_never_breaks_a_page(page, tmp_path, mnist_root,
                                                                                           monkeypatch):
    """What an older version or a hand-written file leaves: the model still shows, its unknowns marked."""
    folder = tmp_path / "checkpoints"
    shutil.copytree(CHECKPOINT_DIR, folder)
    network, _ = load_checkpoint("cnn")
    save_checkpoint(folder / "cnn.pt", network, {"model": "cnn"})
    evaluation = json.loads((folder / "cnn.metrics.json").read_text())
    (folder / "cnn.metrics.json").write_text(json.dumps({"model": "cnn", "metrics": evaluation["metrics"]}))
    monkeypatch.setenv(CHECKPOINT_DIR_ENV, str(folder))
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    app = open_page(page)
    assert app.sidebar.multiselect(key=SELECTED_MODELS_KEY).value == list(MODEL_NAMES)
    provenance = [markdown.value for markdown in app.sidebar.markdown if markdown.value.startswith("**CNN**")]
    assert provenance and "unknown epochs in an unknown time" in provenance[0]
    if page == PAGES[1]:
        app.session_state["canvas"] = canvas_stroke(140, 50, 140, 230)
        app.run()
        assert not app.exception and len(app.metric) == len(MODEL_NAMES)
    if page == PAGES[3]:
        assert "No training history recorded for CNN." in texts(app)


def test_the_empty_canvas_shows_a_hint_not_a_prediction():
    app = open_page(PAGES[1])
    assert not app.metric and "Draw a digit on the canvas" in texts(app)


def test_a_drawn_one_is_predicted_by_every_model(mnist_root):
    app = open_page(PAGES[1])
    app.session_state["canvas"] = canvas_stroke(140, 50, 140, 230)
    app.run()
    assert not app.exception
    predictions = {metric.label: metric.value for metric in app.metric}
    assert len(predictions) == len(MODEL_NAMES) and predictions["CNN"] == "1"
    stages = [caption for image in app.get("image") for caption in image.captions]
    assert stages == ["paper's brightness (estimated; shadows)", "ink against the paper", "cropped to the ink",
                      "scaled to fit 20×20", "centred by mass in 28×28"]


def test_model_selection_in_the_sidebar_filters_every_page(mnist_root, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    app = open_page(PAGES[0])
    app.sidebar.multiselect(key=SELECTED_MODELS_KEY).set_value(["cnn", "mlp"]).run()
    assert [row for row in app.dataframe[0].value["model"]] == ["MLP", "CNN"]
    app.switch_page(PAGES[3]).run()
    assert not app.exception and app.selectbox(key="roc_model").options == ["MLP", "CNN"]


def test_dataset_digit_filter_shows_only_that_digit(mnist_root, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    app = open_page(PAGES[2])
    app.selectbox(key="sample_digit").select("3").run()
    captions = app.get("image")[0].captions
    assert len(captions) == 30 and all(caption.startswith("3 ·") for caption in captions)


def test_choosing_a_confusion_cell_opens_its_gallery(mnist_root, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    app = open_page(PAGES[3])
    app.session_state["confusion_cnn"] = {"selection": {"points": [{"x": 9, "y": 4, "customdata": 0}],
                                                        "point_indices": [49], "box": [], "lasso": []}}
    app.run()
    assert not app.exception
    assert any(markdown.value.startswith("**CNN: true 4, predicted 9**") for markdown in app.markdown)


def test_picking_points_on_the_pca_map_shows_those_images(mnist_root, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    app = open_page(PAGES[2])
    app.session_state["pca_map"] = {"selection": {"points": [{"customdata": {"0": 7}}, {"customdata": {"0": 3}}],
                                                  "point_indices": [0, 1], "box": [], "lasso": []}}
    app.run()
    assert not app.exception
    assert any(markdown.value == "**2 images picked on the map**" for markdown in app.markdown)
    labels = load_mnist("train", mnist_root)[1]
    assert app.get("image")[-1].captions == [f"#7 · {int(labels[7])}", f"#3 · {int(labels[3])}"]


def test_streamlit_settings_keep_visitors_private_and_uploads_small():
    settings = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["browser"]["gatherUsageStats"] is False
    assert 10 <= settings["server"]["maxUploadSize"] <= 25, "megabytes: a phone photo (50 MP: 7 MB), not a dataset"
    assert settings["theme"]["base"] in ("light", "dark") and settings["theme"]["primaryColor"].startswith("#")


@pytest.fixture
def with_a_fashion_model(tmp_path, fashion_root, monkeypatch):
    """The shipped MNIST checkpoints and a quickly trained Fashion-MNIST MLP, with the real data of both."""
    folder = tmp_path / "checkpoints"
    shutil.copytree(CHECKPOINT_DIR, folder, ignore=shutil.ignore_patterns("fashion-*"))
    config = TrainConfig.for_model("mlp", dataset="fashion", epochs=1, train_subset=1000, device="cpu")
    train_and_save(config, load_dataset("fashion", "train", fashion_root),
                   load_dataset("fashion", "test", fashion_root),
                   checkpoint=folder / "fashion-mlp.pt")
    monkeypatch.setenv(CHECKPOINT_DIR_ENV, str(folder))
    monkeypatch.setenv(DATA_DIR_ENV, str(fashion_root))


def test_the_sidebar_dataset_switch_keeps_mnist_and_fashion_models_apart(with_a_fashion_model):
    app = open_page(PAGES[0])
    assert list(app.dataframe[0].value["model"]) == [get_spec(name).title for name in MODEL_NAMES]
    app.sidebar.radio(key=DATASET_KEY).set_value("fashion").run()
    assert not app.exception and list(app.dataframe[0].value["model"]) == ["MLP · Fashion-MNIST"]
    assert app.sidebar.multiselect(key=SELECTED_MODELS_KEY).value == ["fashion-mlp"]
    app.switch_page(PAGES[3]).run()
    assert not app.exception and app.selectbox(key="roc_model").options == ["MLP · Fashion-MNIST"]
    assert app.selectbox(key="roc_digit").options[0] == "T-shirt/top"
    app.sidebar.radio(key=DATASET_KEY).set_value("mnist").run()
    assert app.selectbox(key="roc_model").options == [get_spec(name).title for name in MODEL_NAMES]
    assert app.sidebar.multiselect(key=SELECTED_MODELS_KEY).value == list(MODEL_NAMES)


def test_the_dataset_page_shows_fashion_with_its_class_names_and_draw_asks_for_clothing(with_a_fashion_model):
    app = open_page(PAGES[2])
    assert app.title[0].value == "The MNIST dataset"
    app.sidebar.radio(key=DATASET_KEY).set_value("fashion").run()
    assert not app.exception and app.title[0].value == "The Fashion-MNIST dataset"
    app.selectbox(key="sample_digit").select("9").run()
    captions = app.get("image")[0].captions
    assert len(captions) == 30 and all(caption.startswith("Ankle boot · #") for caption in captions)
    app.switch_page(PAGES[1]).run()
    assert not app.exception and "the canvas is not offered" in texts(app)
    assert app.get("file_uploader") and not app.get("iframe")
