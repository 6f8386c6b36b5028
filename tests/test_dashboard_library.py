"""The library code behind the pages: catalog, predictions, exploration helpers and figure builders."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from dashboard.figures import (
    confusion_figure,
    digit_map_figure,
    per_class_frame,
    probabilities_figure,
    roc_by_class_figure,
    roc_by_model_figure,
    training_curves_figure,
)
from dashboard.pictures import AGREED, DISPUTED, as_rgb, boxed_number
from dashboard.reading import NumberReading, position_labels, read_with_each
from dashboard.text import agreement, number_disagreement, ordinal, provenance
from dashboard.widgets import enlarge, selected_images
from mnist_models import MODEL_NAMES, get_spec, load_checkpoint, load_evaluation, save_checkpoint
from mnist_models.exploration import (
    architecture_views,
    class_counts,
    confusion_cell,
    most_confident_mistakes,
    sample_indices,
)
from mnist_models.inference import predict_logits
from mnist_models.paths import CHECKPOINT_DIR
from mnist_models.preprocess import DigitBox, read_digits
from mnist_models.serving.catalog import CatalogEntry, Prediction, load_catalog, predict_with_each
from mnist_models.store.evidence_records import Evidence, evidence_path, load_evidence
from mnist_models.store.records import CheckpointMeta


def _prediction(title, digit):
    probabilities = np.full(10, 0.01)
    probabilities[digit] = 0.91
    return Prediction(title.lower(), title, probabilities, 1.0)


def test_agreement_names_the_dissenters():
    assert agreement([_prediction("CNN", 7), _prediction("MLP", 7)]) == "All 2 models agree: it is a 7."
    text = agreement([_prediction("CNN", 7), _prediction("MLP", 7), _prediction("RNN", 1)])
    assert text == "The models disagree: CNN, MLP → 7; RNN → 1."


def test_predictions_skip_unavailable_models_and_time_each(tmp_path):
    entries = [CatalogEntry("mlp", "MLP", tmp_path / "mlp.pt", network=get_spec("mlp").build().eval()),
               CatalogEntry("rnn", "RNN", tmp_path / "rnn.pt", error="no checkpoint")]
    predictions = predict_with_each(entries, np.zeros((28, 28), dtype=np.uint8))
    assert [p.name for p in predictions] == ["mlp"] and predictions[0].latency_ms > 0
    assert predictions[0].probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_calibrated_predictions_divide_the_logits_by_the_fitted_temperature(tmp_path):
    network, _ = load_checkpoint("cnn")
    calibration = load_evidence(evidence_path(CHECKPOINT_DIR / "cnn.pt")).calibration
    hot = dataclasses.replace(calibration, temperature=4.0)
    entry = CatalogEntry("cnn", "CNN", tmp_path / "cnn.pt", network=network,
                         evidence=Evidence("cnn", "cnn.pt", calibration=hot))
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:16] = 255  # a 1
    raw, scaled = predict_with_each([entry], digit)[0], predict_with_each([entry], digit, calibrated=True)[0]
    logits = predict_logits(network, digit)[0]
    np.testing.assert_allclose(scaled.probabilities, torch.softmax(torch.from_numpy(logits) / 4.0, 0).numpy(),
                               rtol=1e-5)
    assert scaled.digit == raw.digit and scaled.confidence < raw.confidence
    uncalibrated = CatalogEntry("cnn", "CNN", tmp_path / "cnn.pt", network=network)  # no evidence: as trained
    np.testing.assert_allclose(predict_with_each([uncalibrated], digit, calibrated=True)[0].probabilities,
                               raw.probabilities)


def test_catalog_marks_missing_models_with_the_reason(tmp_path):
    entries = load_catalog(tmp_path)
    assert len(entries) == len(MODEL_NAMES) and not any(entry.available for entry in entries)
    assert all("no checkpoint" in entry.error for entry in entries)


def test_confusion_cell_and_confident_mistakes():
    labels = np.array([4, 4, 4, 9, 9])
    predictions = np.array([4, 9, 9, 9, 4])
    confidence = np.array([0.9, 0.6, 0.99, 0.8, 0.7])
    assert confusion_cell(labels, predictions, 4, 9).tolist() == [1, 2]
    assert most_confident_mistakes(labels, predictions, confidence).tolist() == [2, 4, 1]


def test_points_picked_on_a_map_give_their_image_indices():
    points = [{"customdata": {"0": 43059}}, {"customdata": [7]}, {"customdata": 12}, {"customdata": {"0": 43059}},
              {"x": 1.0}, {"customdata": []}]
    assert selected_images(points) == [43059, 7, 12]
    fig = digit_map_figure(np.zeros((3, 2)), np.array([1, 2, 1]), np.array([10, 20, 30]), ("PC1", "PC2"))
    assert sorted(int(row[0]) for trace in fig.data for row in trace.customdata) == [10, 20, 30]
    marked = digit_map_figure(np.arange(6.0).reshape(3, 2), np.array([1, 2, 1]), np.array([10, 20, 30]), ("x", "y"),
                              wrong=np.array([False, True, False]), drawing=np.array([9.0, 9.0]))
    misread, drawn = marked.data[-2], marked.data[-1]
    assert misread.name == "misread" and [int(row[0]) for row in misread.customdata] == [20]
    assert drawn.name == "your drawing" and (drawn.x[0], drawn.y[0]) == (9.0, 9.0) and drawn.customdata is None


def test_sampling_filters_by_digit_and_reshuffles_by_seed():
    labels = torch.arange(100) % 10
    picked = sample_indices(labels, 5, digit=3, seed=1)
    assert len(picked) == 5 and (labels[picked] == 3).all()
    assert not np.array_equal(sample_indices(labels, 10, seed=1), sample_indices(labels, 10, seed=2))
    assert class_counts(labels).tolist() == [10] * 10


def test_architecture_views_have_each_models_shape():
    views = architecture_views(torch.full((28, 28), 255, dtype=torch.uint8))
    assert views["image"].shape == (28, 28) and views["vector"].shape == (784,)
    assert views["mobilenet"].shape == (96, 96, 3) and views["normalised"].max() == pytest.approx(2.8215, abs=1e-3)


def test_enlarge_keeps_pixels_crisp():
    image = np.array([[0, 1], [1, 0]], dtype=float)
    big = enlarge(image, 4)
    assert big.shape == (4, 4) and big.dtype == np.uint8 and big[0, 0] == 0 and big[0, 3] == 255
    thin = enlarge(np.ones((10, 2)), 20)
    assert thin.shape == (20, 20) and thin[:, :8].max() == 0 and thin[:, 8:12].min() == 255


def test_confusion_figure_has_one_clickable_point_per_cell():
    matrix = np.diag([10] * 10).tolist()
    figure = confusion_figure(matrix, "CNN")
    overlay = figure.data[1]
    assert len(overlay.x) == 100 and overlay.customdata[0] == 10 and overlay.marker.opacity == 0


def test_figures_reflect_their_inputs():
    heat = probabilities_figure(["A", "B"], [np.eye(10)[3], np.full(10, 0.1)])
    assert list(heat.data[0].y) == ["A", "B"] and heat.data[0].z[0][3] == 1.0 and heat.data[0].text[0][3] == "100%"
    assert heat.data[0].text[0][0] == "" and heat.data[0].text[1][0] == "10%"
    history = {"epoch": [1, 2], "train_loss": [0.5, 0.3], "val_loss": [0.4, 0.35], "train_accuracy": [0.9, 0.95],
               "val_accuracy": [0.92, 0.94]}
    assert len(training_curves_figure({"A": history, "B": history}).data) == 8
    evaluation = load_evaluation("cnn")
    frame = per_class_frame({"CNN": evaluation, "CNN again": evaluation})
    assert frame.shape == (10, 6)
    assert frame.loc["3", ("CNN", "recall")] == evaluation.metrics.per_class["3"]["recall"]
    roc = roc_by_model_figure(evaluation, "CNN")
    assert len(roc.data) == 12 and "macro AUC" in roc.layout.title.text  # 10 digits, micro-average, chance
    assert list(roc.data[3].x) == evaluation.metrics.roc["3"]["fpr"]
    assert [trace.name.split(" (")[0] for trace in roc_by_class_figure({"A": evaluation}, 3).data] == ["A", "chance"]


def test_provenance_marks_what_an_older_or_hand_written_checkpoint_does_not_say(tmp_path):
    entry = CatalogEntry("cnn", "CNN", tmp_path / "cnn.pt", network=get_spec("cnn").build(),
                         meta=CheckpointMeta(model="cnn"))
    text = provenance(entry)
    assert text.startswith("test accuracy not evaluated · unknown epochs in an unknown time on an unknown device")
    assert text.endswith("init: unknown · trained unknown · torch unknown")
    entry.meta = CheckpointMeta(model="cnn", epochs_completed=3, train_time_s=12.4, device="cpu",
                                initialisation="random", created="2026-11-21T05:53:14+00:00",
                                versions={"torch": "2.13.0"})
    entry.evaluation = load_evaluation("cnn")
    assert provenance(entry) == (f"test accuracy {entry.evaluation.metrics.accuracy:.2%} · 3 epochs in 12 s on cpu  \n"
                                 "init: random · trained 2026-11-21 · torch 2.13.0")


def test_an_unusable_evaluation_keeps_the_model_and_says_why(tmp_path):
    network, _ = load_checkpoint("mlp")
    save_checkpoint(tmp_path / "mlp.pt", network, {"model": "mlp"})
    evaluation = load_evaluation("mlp").to_dict()
    evaluation["metrics"]["accuracy"] = "high"
    (tmp_path / "mlp.metrics.json").write_text(json.dumps(evaluation))
    entry = next(entry for entry in load_catalog(tmp_path) if entry.name == "mlp")
    assert entry.available and entry.evaluation is None
    assert "mlp.metrics.json is unusable: the field 'accuracy' should be float" in entry.evaluation_error
    assert provenance(entry).startswith("test accuracy unknown (evaluation unusable) · ")
    (tmp_path / "mlp.metrics.json").unlink()
    entry = next(entry for entry in load_catalog(tmp_path) if entry.name == "mlp")
    assert entry.evaluation_error is None and provenance(entry).startswith("test accuracy not evaluated · ")


def test_number_disagreement_names_the_digit_and_how_each_model_reads_it():
    assert number_disagreement({"CNN": "4075", "RNN": "4015"}) == (
        "Models disagree on the 3rd digit: CNN reads 7, RNN reads 1.")
    assert number_disagreement({"CNN": "4075", "MLP": "4075", "MobileNet": "4075", "RNN": "4076"}) == (
        "Models disagree on the 4th digit: RNN reads 6, the other 3 read 5.")
    assert number_disagreement({"CNN": "12", "MLP": "72", "RNN": "17"}) == (
        "Models disagree on the 1st digit: MLP reads 7, CNN and RNN read 1; and on the 2nd digit: RNN reads 7, "
        "CNN and MLP read 2.")
    assert number_disagreement({"CNN": "4075", "RNN": "4075"}) == "All 2 models read 4075."
    assert number_disagreement({"CNN": "4075"}) == "CNN reads 4075."
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "111th"]


def _boxes_of_ones(count: int) -> list[DigitBox]:
    one = np.zeros((28, 28), np.float32)
    one[4:24, 13:16] = 1.0
    return [DigitBox(10, 10 + 40 * i, 50, 40 + 40 * i, one) for i in range(count)]


def test_a_number_is_read_in_one_batch_per_model_as_the_library_reads_it(tmp_path):
    network, _ = load_checkpoint("cnn")
    boxes = _boxes_of_ones(3)
    entries = [CatalogEntry("cnn", "CNN", tmp_path / "cnn.pt", network=network),
               CatalogEntry("rnn", "RNN", tmp_path / "rnn.pt", error="no checkpoint")]
    (reading,) = read_with_each(entries, boxes)
    text, confidences = read_digits(network, boxes)
    assert reading.title == "CNN" and reading.text == text == "111"
    np.testing.assert_allclose(reading.confidences, confidences, rtol=1e-5)
    hot = dataclasses.replace(load_evidence(evidence_path(CHECKPOINT_DIR / "cnn.pt")).calibration, temperature=4.0)
    entries[0].evidence = Evidence("cnn", "cnn.pt", calibration=hot)
    (calibrated,) = read_with_each(entries, boxes, calibrated=True)
    assert calibrated.text == "111" and max(calibrated.confidences) < min(reading.confidences)
    assert read_with_each(entries, []) == []


def test_the_readings_over_a_number_give_the_digit_or_the_votes_where_models_differ():
    readings = [NumberReading("cnn", "CNN", (4, 0, 7), (1.0,) * 3), NumberReading("mlp", "MLP", (4, 0, 1), (1.0,) * 3),
                NumberReading("rnn", "RNN", (4, 0, 1), (1.0,) * 3)]
    assert position_labels(readings) == ["4", "0", "1/7"]


def test_a_number_s_boxes_are_drawn_over_the_picture_scaled_down_to_fit():
    paper = np.full((1000, 2000), 230, np.uint8)
    picture = boxed_number(paper, _boxes_of_ones(2), ["1", "7/1"], [False, True], max_side=500)
    assert picture.shape == (250, 500, 3) and picture.dtype == np.uint8
    colours = {tuple(colour) for colour in picture.reshape(-1, 3)}
    assert AGREED in colours and DISPUTED in colours
    small = boxed_number(np.zeros((60, 100), np.uint8), _boxes_of_ones(1), ["1"], [False])
    assert small.shape == (60, 100, 3)  # a small picture keeps its size
    transparent = np.zeros((4, 4, 2), np.uint8)  # gray + alpha, fully transparent: white paper
    assert (as_rgb(transparent) == 255).all() and as_rgb(np.ones((2, 2), np.float32)).max() == 255
