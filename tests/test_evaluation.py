import numpy as np
import pytest
import torch

from mnist_models.evaluation import classification_metrics, expected_calibration_error, measure_latency
from mnist_models.models.registry import get_spec
from mnist_models.timing import Percentiles, percentiles


def _one_hot_probabilities(predicted, confidence):
    """Rows that put ``confidence`` on the predicted class and spread the rest evenly."""
    probabilities = np.full((len(predicted), 10), 0.0)
    for row, (digit, value) in enumerate(zip(predicted, confidence, strict=True)):
        probabilities[row] = (1 - value) / 9
        probabilities[row, digit] = value
    return probabilities


def test_expected_calibration_error_by_hand():
    # Two bins used: confidence 0.9 (2 samples, both right: gap 0.1) and 0.6 (2 samples, one right: gap 0.1).
    probabilities = _one_hot_probabilities([1, 2, 3, 4], [0.9, 0.9, 0.6, 0.6])
    assert expected_calibration_error(probabilities, np.array([1, 2, 3, 0])) == pytest.approx(0.1)
    # Perfect confidence, always right: zero error. Always wrong: error equals the confidence.
    certain = _one_hot_probabilities([5, 6], [1.0, 1.0])
    assert expected_calibration_error(certain, np.array([5, 6])) == pytest.approx(0.0)
    assert expected_calibration_error(certain, np.array([0, 0])) == pytest.approx(1.0)


def test_metrics_on_a_small_hand_computed_case():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 9])
    predicted = labels.copy()
    predicted[1] = 1  # one 0 read as 1
    predicted[13] = 4  # one 9 read as 4
    metrics = classification_metrics(_one_hot_probabilities(predicted, [0.8] * len(labels)), labels)
    assert metrics.accuracy == pytest.approx(12 / 14) and metrics.errors == 2
    matrix = np.array(metrics.confusion_matrix)
    assert matrix[0, 1] == 1 and matrix[9, 4] == 1 and np.trace(matrix) == 12 and matrix.sum() == 14
    assert metrics.per_class["0"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert metrics.per_class["1"]["precision"] == pytest.approx(2 / 3)
    assert metrics.log_loss == pytest.approx(-(12 * np.log(0.8) + 2 * np.log(0.2 / 9)) / 14)
    assert metrics.ece == pytest.approx(abs(12 / 14 - 0.8))


def test_roc_and_auc_for_perfect_and_uninformative_scores():
    labels = np.repeat(np.arange(10), 5)
    perfect = classification_metrics(_one_hot_probabilities(labels, [0.9] * 50), labels)
    assert perfect.auc.macro == pytest.approx(1.0) and perfect.auc.micro == pytest.approx(1.0)
    assert perfect.roc["3"]["fpr"][0] == 0.0 and perfect.roc["3"]["tpr"][-1] == 1.0
    uniform = classification_metrics(np.full((50, 10), 0.1), labels)
    assert uniform.auc.macro == pytest.approx(0.5)
    assert set(uniform.roc) == {str(d) for d in range(10)} | {"micro"}


def test_latency_is_measured_for_one_image_and_a_batch():
    model = get_spec("mlp").build().eval()
    latency = measure_latency(model, torch.zeros(64, 28, 28, dtype=torch.uint8), single_runs=5, batch_runs=2,
                              batch_size=64)
    assert 0 < latency.single.p50_ms <= latency.single.p95_ms
    assert latency.batch_size == 64 and latency.batch.p50_ms > 0 and latency.device == "cpu"


def test_percentiles_interpolate_between_samples():
    summary = percentiles([1.0, 2.0, 3.0, 4.0, 100.0])
    assert summary.p50_ms == 3.0 and summary.p95_ms == pytest.approx(80.8)
    assert percentiles([5.0]) == Percentiles(5.0, 5.0)
    with pytest.raises(ValueError):
        percentiles([])
