import json
import shutil

import numpy as np
import pytest
import torch

from mnist_models.data import load_mnist, split_train_validation, tensor_checksum
from mnist_models.evaluation import (
    classification_metrics,
    evaluate,
    expected_calibration_error,
    measure_latency,
    recalibrate,
    validation_images,
)
from mnist_models.inference import predict_logits
from mnist_models.models.registry import get_spec
from mnist_models.novelty import is_novel
from mnist_models.paths import CHECKPOINT_DIR
from mnist_models.store.checkpoints import CheckpointError, load_checkpoint
from mnist_models.store.records import CheckpointMeta
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


def _random_digits(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (count, 28, 28), dtype=torch.uint8, generator=generator),
            torch.arange(count) % 10)


def test_evaluate_calibrates_the_novelty_threshold_on_the_validation_digits_given():
    model = get_spec("mlp").build().eval()
    meta = CheckpointMeta(model="mlp", dataset={"train_sha256": "not MNIST"})
    validation = _random_digits(400, seed=1)
    evaluation = evaluate(model, meta, _random_digits(50), latency=False, validation_data=validation)
    assert evaluation.novelty.count == 400 and evaluation.novelty.score == "energy"
    assert is_novel(predict_logits(model, validation[0]), evaluation.novelty).mean() <= 0.01
    images_only = evaluate(model, meta, _random_digits(50), latency=False, validation_data=validation[0]).novelty
    assert images_only.threshold == evaluation.novelty.threshold
    assert images_only.quantiles == evaluation.novelty.quantiles
    # () means none; and weights trained on other images than MNIST's get no threshold from MNIST's validation split
    assert evaluate(model, meta, _random_digits(50), latency=False, validation_data=()).novelty is None
    assert evaluate(model, meta, _random_digits(50), latency=False).novelty is None


def test_the_validation_digits_are_the_split_the_weights_were_trained_without(mnist_root):
    images, labels = load_mnist("train", mnist_root)
    (_, _), (held_out, _) = split_train_validation(images, labels, 5000)
    assert torch.equal(validation_images(CheckpointMeta(model="cnn"), mnist_root), held_out)
    trained_on_mnist = CheckpointMeta(model="cnn", training={"validation_size": 100},
                                      dataset={"train_sha256": tensor_checksum(images, labels)})
    assert torch.equal(validation_images(trained_on_mnist, mnist_root),
                       split_train_validation(images, labels, 100)[1][0])
    assert validation_images(CheckpointMeta(model="cnn", dataset={"train_sha256": "other"}), mnist_root) is None


def test_validation_digits_are_none_without_the_dataset(tmp_path):
    assert validation_images(CheckpointMeta(model="cnn"), tmp_path / "nothing here") is None


def test_recalibrate_rewrites_only_the_novelty_threshold(tmp_path):
    for suffix in (".pt", ".metrics.json"):
        shutil.copy(CHECKPOINT_DIR / f"mlp{suffix}", tmp_path / f"mlp{suffix}")
    before = json.loads((tmp_path / "mlp.metrics.json").read_text())
    network, meta = load_checkpoint(tmp_path / "mlp.pt")
    evaluation = recalibrate(network, meta, _random_digits(300))
    after = json.loads((tmp_path / "mlp.metrics.json").read_text())
    assert after["novelty"]["count"] == 300 and evaluation.novelty.count == 300
    assert {key: value for key, value in after.items() if key != "novelty"} == {
        key: value for key, value in before.items() if key != "novelty"}  # test figures and latency as they were
    (tmp_path / "mlp.metrics.json").unlink()
    with pytest.raises(CheckpointError, match="no evaluation"):
        recalibrate(network, meta, _random_digits(300))
