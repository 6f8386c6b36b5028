"""The Evidence page under AppTest: every section with the shipped evidence files, and without them (a line with the
command that computes them, the rest of the page working); a damaged file; the drawing placed on the map; the real-input
results, and a clear message when they are missing or unreadable."""

from __future__ import annotations

import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from benchmarks.common import canvas_stroke
from dashboard.sidebar import SELECTED_MODELS_KEY
from mnist_models import MODEL_NAMES, load_checkpoint, save_checkpoint
from mnist_models.paths import CHECKPOINT_DIR, CHECKPOINT_DIR_ENV, DATA_DIR_ENV, REPO_ROOT
from mnist_models.real_input import RESULTS_ENV, ModelTally, RealInputResults, SourceResult

APP = str(REPO_ROOT / "app.py")
EVIDENCE = "pages/evidence_page.py"
SECTIONS = ["Robustness", "Calibration", "Selective prediction", "Disagreements", "Map of the digits"]


def open_section(section: str, app: AppTest | None = None) -> AppTest:
    app = app or AppTest.from_file(APP, default_timeout=180).run()
    app.switch_page(EVIDENCE).run()
    app.radio[0].set_value(section).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def texts(app: AppTest) -> str:
    return "\n".join(str(element.value) for kind in ("markdown", "info", "warning", "caption")
                     for element in getattr(app, kind))


def chart_ids(app: AppTest) -> list[str]:
    return [chart.proto.id for chart in app.get("plotly_chart")]


@pytest.fixture
def with_data(mnist_root, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))


@pytest.fixture
def without_evidence(tmp_path, monkeypatch):
    """The shipped checkpoints and evaluations, without their evidence files and maps."""
    folder = tmp_path / "checkpoints"
    shutil.copytree(CHECKPOINT_DIR, folder, ignore=shutil.ignore_patterns("*.evidence.json", "*.map.pkl"))
    monkeypatch.setenv(CHECKPOINT_DIR_ENV, str(folder))
    return folder


def test_robustness_shows_every_model_s_curves_and_tests_the_reports_claims(with_data):
    app = open_section("Robustness")
    text = texts(app)
    assert "Most robust overall:" in text
    assert "Report 004: “dropout improved generalization and model robustness.”** Holds here" in text or \
        "Report 004: “dropout improved generalization and model robustness.”** Does not hold here" in text
    assert "Report 000: the RNN “struggles” next to the CNN.**" in text
    assert any("robustness_chart" in chart for chart in chart_ids(app))
    table = app.dataframe[0].value
    assert len(table) == len(MODEL_NAMES) and ((table["overall"] > 0) & (table["overall"] <= 1)).all()


@pytest.mark.parametrize("section", SECTIONS[1:3])
def test_calibration_and_selective_prediction_show_their_figures(section, with_data):
    app = open_section(section)
    assert "Not computed" not in texts(app)
    if section == "Calibration":
        assert "Best calibrated as trained:" in texts(app)
        assert all(any(key in chart for chart in chart_ids(app)) for key in ("reliability_chart", "confidence_chart"))
        assert (app.dataframe[0].value["temperature"] > 0).all()
        app.toggle(key="calibrated_view").set_value(True).run()
        assert not app.exception
    else:
        assert texts(app).count("is right 99.9% of the time on the") + texts(app).count("never reaches") == len(
            MODEL_NAMES)


def test_disagreements_count_pairs_and_filter_the_gallery(with_data):
    app = open_section("Disagreements")
    assert any("disagreement_chart" in chart for chart in chart_ids(app))
    app.selectbox(key="pair_first").set_value("RNN").run()
    app.selectbox(key="pair_second").set_value("CNN").run()
    assert not app.exception
    shown = [markdown.value for markdown in app.markdown if markdown.value.startswith("**RNN and CNN disagree on")]
    assert len(shown) == 1
    app.radio(key="pair_outcome").set_value("both wrong").run()
    assert not app.exception and any("both wrong:" in markdown.value for markdown in app.markdown)


@pytest.mark.slow
def test_the_map_places_the_visitor_s_drawing_among_its_nearest_test_digits(with_data):
    app = AppTest.from_file(APP, default_timeout=180).run()
    app.switch_page("pages/draw_page.py").run()
    app.session_state["canvas"] = canvas_stroke(140, 50, 140, 230)
    app.run()
    app = open_section("Map of the digits", app)
    assert any("feature_map_" in chart for chart in chart_ids(app))
    assert any(markdown.value.startswith("Your drawing sits among these digits") for markdown in app.markdown)
    assert "your drawing (★)" in [caption for image in app.get("image") for caption in image.captions]


@pytest.mark.parametrize("section", SECTIONS)
def test_without_the_evidence_files_each_section_says_how_to_compute_them(section, with_data, without_evidence):
    app = open_section(section)
    text = texts(app)
    if section == "Disagreements":  # computed from the evaluations' per-image answers: no extra file
        assert any("disagreement_chart" in chart for chart in chart_ids(app))
    else:
        part = {"Robustness": "robustness", "Map of the digits": "map"}.get(section, "calibration")
        assert f"digit-lab evaluate --only {part}" in text


def test_a_damaged_evidence_file_disables_only_that_model_s_evidence(with_data, without_evidence):
    shutil.copy(CHECKPOINT_DIR / "cnn.evidence.json", without_evidence / "cnn.evidence.json")
    (without_evidence / "mlp.evidence.json").write_text("{not json")
    app = open_section("Robustness")
    assert any("**MLP**: its evidence cannot be shown" in warning.value for warning in app.warning)
    assert len(app.dataframe[0].value) == 1  # the CNN's curves still show


def test_the_selection_in_the_sidebar_filters_the_evidence(with_data):
    app = open_section("Robustness")
    app.sidebar.multiselect(key=SELECTED_MODELS_KEY).set_value(["cnn", "cnn_basic", "cnn_dropout"]).run()
    assert len(app.dataframe[0].value) == 3 and "Testing it needs the RNN and the CNN selected" in texts(app)


def test_without_the_dataset_the_sections_with_images_say_what_they_need(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nowhere"))
    for section in ("Disagreements", "Map of the digits"):
        app = open_section(section)
        assert any("MNIST dataset is not available" in warning.value for warning in app.warning), section


def test_evidence_of_earlier_weights_is_not_shown_as_this_model_s(with_data, tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    shutil.copytree(CHECKPOINT_DIR, folder)
    network, meta = load_checkpoint("cnn")
    save_checkpoint(folder / "cnn.pt", network, {**meta.to_dict(), "weights_id": "retrained"})
    evidence = json.loads((folder / "cnn.evidence.json").read_text())
    (folder / "cnn.evidence.json").write_text(json.dumps({**evidence, "weights_id": "the weights before"}))
    monkeypatch.setenv(CHECKPOINT_DIR_ENV, str(folder))
    app = open_section("Robustness")
    assert any("**CNN**: its evidence cannot be shown: it was computed for earlier weights" in warning.value
               for warning in app.warning)
    assert "CNN" not in list(app.dataframe[0].value["model"])


@pytest.fixture
def real_input_file(tmp_path, monkeypatch):
    """Where the Real input section reads its results: a file of the test's own."""
    path = tmp_path / "real_input.json"
    monkeypatch.setenv(RESULTS_ENV, str(path))
    return path


def test_real_input_shows_each_model_s_refused_right_and_wrong_per_source(real_input_file):
    tallies = {name: ModelTally(10, 4, 5, 1) for name in ("cnn", "mlp")}
    record = RealInputResults({"uci-canvas": SourceResult("uci-canvas", "other writers' digits", False, 10,
                                                          {"FAINT": 4}, tallies),
                               "letters": SourceResult("letters", "letters", True, 10, {}, {
                                   name: ModelTally(10, 0, 0, 10, flagged=3) for name in ("cnn", "mlp")})},
                              {"cnn": "CNN", "mlp": "MLP"}, skipped={"fashion": "Fashion-MNIST not found"})
    real_input_file.write_text(json.dumps(record.to_dict()))
    app = open_section("Real input")
    summary = app.dataframe[0].value
    assert list(summary["model"]) == ["MLP", "CNN"] and list(summary["uci-canvas"]) == [0.5, 0.5]
    assert "other writers' digits" in texts(app) and "Fashion-MNIST not found" in texts(app)
    assert any("real_input_chart" in chart for chart in chart_ids(app))
    assert list(app.dataframe[1].value["refused"]) == [4, 4] and "faint 4" in texts(app)
    assert "Not measured on real input:" in texts(app)  # the other shipped models
    app.selectbox(key="real_input_source").set_value("letters").run()
    assert not app.exception and list(app.dataframe[1].value["read as a digit"]) == [10, 10]


def test_real_input_says_when_the_results_are_missing_or_unreadable(real_input_file):
    app = open_section("Real input")
    assert "Not measured yet: `MNIST_DATA_DIR" in texts(app) and "bench_real_input" in texts(app)
    for content, problem in [("{not json", "is not JSON"), (json.dumps({"format_version": 99, "sources": {}}),
                                                            "newer than this digit-lab reads")]:
        real_input_file.write_text(content)
        app = open_section("Real input")
        assert any("The real-input results cannot be shown" in warning.value and problem in warning.value
                   for warning in app.warning), problem
