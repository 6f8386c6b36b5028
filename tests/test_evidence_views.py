"""What the Evidence page says and draws, without Streamlit: the verdicts on the reports' claims computed from the
curves, the rankings, and the figures built from the evidence records."""

import numpy as np

from dashboard.figures import disagreement_figure, reliability_figure, risk_coverage_figure, robustness_figure
from dashboard.text import calibration_ranking, dropout_verdict, rnn_verdict, robustness_ranking, selective_sentence
from mnist_models.store.evidence_records import Calibration, Reliability, RobustnessCurve, Selective

TITLES = {"cnn": "CNN", "rnn": "RNN", "cnn_basic": "Basic CNN", "cnn_dropout": "CNN + dropout", "mlp": "MLP"}


def curves(*accuracies_at_60: float) -> dict[str, RobustnessCurve]:
    """Two corruptions whose accuracy falls from 0.99 to the given values."""
    return {name: RobustnessCurve(name, (0.0, 30.0, 60.0), (0.99, (0.99 + low) / 2, low))
            for name, low in zip(("rotation", "shift"), accuracies_at_60, strict=True)}


def test_the_dropout_claim_holds_when_dropout_scores_higher_and_says_under_which_corruptions():
    evidence = {"cnn_dropout": curves(0.8, 0.5), "cnn_basic": curves(0.6, 0.6)}
    sentence = dropout_verdict(evidence, TITLES)
    assert "Holds here" in sentence and "under 1 of 2 corruptions (rotation)" in sentence
    assert "Does not hold here" in dropout_verdict({"cnn_dropout": curves(0.5, 0.5), "cnn_basic": curves(0.6, 0.6)},
                                                   TITLES)
    assert "needs the basic CNN and CNN + dropout" in dropout_verdict({"cnn_basic": curves(0.6, 0.6)}, TITLES)


def test_the_rnn_claim_compares_with_the_cnn_and_counts_the_convolutional_models_above_it():
    evidence = {"rnn": curves(0.4, 0.4), "cnn": curves(0.7, 0.7), "cnn_basic": curves(0.3, 0.3),
                "mlp": curves(0.9, 0.9)}
    sentence = rnn_verdict(evidence, TITLES, {"rnn": 0.989, "cnn": 0.994})
    assert "Holds here for robustness" in sentence and "below 1 of the 2 convolutional models" in sentence
    assert "98.90% against 99.40%" in sentence


def test_rankings_name_the_extremes():
    assert robustness_ranking({"A": curves(0.9, 0.9), "B": curves(0.1, 0.1)}).startswith(
        "Most robust overall: **A** (")
    reliability = Reliability((0.5,), (0.5,), (10,))
    def calibration(before, after):
        return Calibration(1.5, 15, 10, before, after, 0.1, 0.1, 0.1, 0.1, reliability, reliability, (10,), (10,))
    sentence = calibration_ranking({"A": calibration(0.02, 0.01), "B": calibration(0.01, 0.005)})
    assert "as trained: **B** (expected calibration error 1.00%); worst: **A** (2.00%)" in sentence


def test_the_selective_sentence_gives_coverage_and_threshold_or_says_it_is_never_reached():
    reached = Selective(0.999, (0.5, 1.0), (1.0, 0.99), 0.9512, 0.979, 0.0001)
    assert selective_sentence("CNN", reached) == ("CNN is right 99.9% of the time on the 97.9% of digits it is "
                                                  "surest of (confidence ≥ 0.9512), and abstains on the rest.")
    never = Selective(0.999, (0.5, 1.0), (0.9, 0.9), None, None, 0.1)
    assert "never reaches 99.9%" in selective_sentence("MLP", never)


def test_the_figures_draw_every_model_and_corruption():
    figure = robustness_figure({"A": curves(0.9, 0.9), "B": curves(0.1, 0.1)}, {"rotation": "rotation (°)",
                                                                                  "shift": "shift (px)"})
    assert len(figure.data) == 4 and [trace.showlegend for trace in figure.data] == [True, True, False, False]
    assert list(figure.data[0].y) == [99.0, 94.5, 90.0]
    selective = Selective(0.999, (0.5, 1.0), (1.0, 0.99), 0.95, 0.5, 0.0)
    assert list(risk_coverage_figure({"A": selective}).data[0].x) == [50.0, 100.0]
    heat = disagreement_figure(np.array([[0, 12], [12, 0]]), ["A", "B"]).data[0]
    assert heat.text[0][1] == "12" and heat.text[0][0] == ""
    reliability = Reliability((0.3, 0.9), (0.2, 0.95), (10, 990))
    calibration = Calibration(1.2, 15, 1000, 0.02, 0.01, 0.1, 0.09, 0.1, 0.09, reliability, reliability, (1,), (1,))
    assert list(reliability_figure({"A": calibration}, calibrated=True).data[1].x) == [0.3, 0.9]
