"""The out-of-distribution score: its arithmetic, the calibration on validation digits, the thresholds shipped with
the checkpoints, and what the Draw page gets from predict_with_each."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mnist_models.data import load_mnist
from mnist_models.evaluation import validation_images
from mnist_models.inference import predict_logits, predict_proba
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.novelty import (
    DEFAULT_FALSE_REJECTION_RATE,
    calibrate,
    energy,
    is_novel,
    max_logit,
    max_softmax,
    novelty_scores,
    refuse,
    scores_for,
    threshold_from_scores,
)
from mnist_models.paths import CHECKPOINT_DIR, DATA_DIR_ENV, REPO_ROOT
from mnist_models.serving.catalog import CatalogEntry, predict_with_each
from mnist_models.store.checkpoints import load_checkpoint, load_evaluation
from mnist_models.store.records import Evaluation


def filled_square(side: int = 20) -> np.ndarray:
    """What preprocessing makes of any filled rectangle of paint: a 20×20 white square, centred."""
    image = np.zeros((28, 28), np.uint8)
    start = (28 - side) // 2
    image[start:start + side, start:start + side] = 255
    return image


def filled_disc(diameter: int = 20) -> np.ndarray:
    """What preprocessing makes of one tap on the canvas: a white disc 20 pixels across, centred."""
    rows, cols = np.mgrid[:28, :28]
    return (((rows - 13.5) ** 2 + (cols - 13.5) ** 2 <= (diameter / 2) ** 2) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def cnn():
    network, meta = load_checkpoint("cnn")
    return network, meta, load_evaluation("cnn", None, meta)


def test_scores_by_hand():
    uniform, peaked = np.zeros(10), np.array([10.0] + [0.0] * 9)
    assert energy(uniform)[0] == pytest.approx(-np.log(10))
    assert energy(peaked)[0] == pytest.approx(-np.log(np.exp(10) + 9))
    assert energy(peaked, temperature=2.0)[0] == pytest.approx(-2 * np.log(np.exp(5) + 9))
    assert max_logit(np.stack([uniform, peaked])).tolist() == [0.0, -10.0]
    assert max_softmax(uniform)[0] == pytest.approx(0.9)
    # However confident: 1 - max(softmax) would round to exactly 0 here, even in double precision.
    assert max_softmax(np.array([40.0] + [0.0] * 9))[0] == pytest.approx(9 * np.exp(-40))
    assert novelty_scores(peaked, "max_logit")[0] == -10.0
    with pytest.raises(ValueError, match="score must be one of"):
        novelty_scores(peaked, "mahalanobis")


@pytest.mark.parametrize("rate", [0.0, 0.005, 0.01, 0.05])
def test_the_threshold_rejects_at_most_the_stated_share_of_the_validation_scores(rate):
    scores = np.random.default_rng(0).normal(size=3001)
    threshold = threshold_from_scores(scores, "energy", rate)
    rejected = np.mean(scores > threshold.threshold)
    assert rate - 1 / len(scores) <= rejected <= rate
    assert threshold.count == 3001 and threshold.false_rejection_rate == rate and threshold.temperature == 1.0
    assert threshold.quantiles["1.0"] == scores.max() and threshold.quantiles["0.5"] == pytest.approx(np.median(scores))
    with pytest.raises(ValueError):
        threshold_from_scores([], "energy", rate)


def test_calibration_on_the_validation_digits_holds_there_and_on_the_test_set(cnn, mnist_root):
    network, meta, _ = cnn
    validation = validation_images(meta, mnist_root)
    threshold = calibrate(network, validation)
    assert threshold.score == "energy" and threshold.count == 5000
    assert threshold.false_rejection_rate == DEFAULT_FALSE_REJECTION_RATE
    on_validation = is_novel(predict_logits(network, validation), threshold).mean()
    assert DEFAULT_FALSE_REJECTION_RATE - 1 / 5000 <= on_validation <= DEFAULT_FALSE_REJECTION_RATE
    # Digits it has never seen are rejected about as often: the threshold generalises beyond the images it was set on.
    on_test = is_novel(predict_logits(network, load_mnist("test", mnist_root)[0][:4000]), threshold).mean()
    assert 0.003 <= on_test <= 0.02


def test_the_shipped_models_carry_the_threshold_calibrated_on_their_validation_digits(mnist_root):
    for name in MODEL_NAMES:
        network, meta = load_checkpoint(name)
        stored = load_evaluation(name, None, meta).novelty
        assert stored is not None, f"{name}'s evaluation has no novelty threshold: `digit-lab evaluate --novelty-only`"
        assert stored.score == "energy" and stored.count == 5000
        assert stored.false_rejection_rate == DEFAULT_FALSE_REJECTION_RATE
        validation = validation_images(meta, mnist_root)
        assert stored.validation_sha256 == hashlib.sha256(validation.numpy().tobytes()).hexdigest()
        if name == "mlp":  # calibrating again gives the same threshold (to float32 rounding across CPUs)
            assert calibrate(network, validation).threshold == pytest.approx(stored.threshold, rel=1e-6)


def test_what_is_no_digit_scores_as_novel(cnn):
    network, meta, evaluation = cnn
    threshold = evaluation.novelty
    # A filled square (any paint blob with corners, after preprocessing) and an empty picture: the CNN flags both,
    # though it still names a digit for them.
    blobs = np.stack([filled_square(), filled_square(12), np.zeros((28, 28), np.uint8)])
    assert is_novel(predict_logits(network, blobs), threshold).all()
    assert predict_proba(network, blobs).max(axis=1).min() > 0.3
    # A real digit is not flagged.
    assert not is_novel(predict_logits(network, drawn_seven()), threshold).any()
    # A disc (one tap) is flagged by the MLP; the CNNs read it as a confident 0 (see the benchmark), which is why the
    # ink analysis, not the models' evidence, has to catch dots.
    mlp, mlp_meta = load_checkpoint("mlp")
    assert is_novel(predict_logits(mlp, filled_disc()), load_evaluation("mlp", None, mlp_meta).novelty).all()


def drawn_seven() -> np.ndarray:
    """A plain 7 drawn here, so no dataset is needed."""
    image = np.zeros((28, 28), np.uint8)
    image[7:10, 6:22] = 255  # the bar
    for row in range(10, 24):  # the stem, slanting down to the left
        column = 20 - (row - 10) // 2
        image[row, column - 1:column + 2] = 255
    return image


def test_the_combined_rule_needs_at_least_half_of_the_calibrated_models():
    assert refuse([True]) is True and refuse([False]) is False
    assert refuse([True, False]) is True  # half of two
    assert refuse([True, False, False]) is False and refuse([True, True, False]) is True
    assert refuse([True, True, True, False, False, False]) is True
    assert refuse([True, True, False, False, False, False]) is False
    assert refuse([None, True, None, False, False]) is False  # uncalibrated models have no say
    assert refuse([None, None]) is None and refuse([]) is None


def test_predict_with_each_scores_from_the_same_forward_pass(cnn):
    network, meta, evaluation = cnn
    uncalibrated = Evaluation.from_dict({key: value for key, value in evaluation.to_dict().items()
                                         if key != "novelty"})  # an evaluation from before novelty existed
    assert uncalibrated.novelty is None
    entries = [CatalogEntry("cnn", "CNN", CHECKPOINT_DIR / "cnn.pt", network=network, meta=meta,
                            evaluation=evaluation),
               CatalogEntry("old", "CNN, old evaluation", CHECKPOINT_DIR / "cnn.pt", network=network, meta=meta,
                            evaluation=uncalibrated),
               CatalogEntry("none", "CNN, not evaluated", CHECKPOINT_DIR / "cnn.pt", network=network, meta=meta)]
    blob, digit = filled_square(), drawn_seven()
    for image, novel in ((blob, True), (digit, False)):
        calibrated, old, unevaluated = predict_with_each(entries, image)
        logits = predict_logits(network, image)
        assert calibrated.novelty_score == pytest.approx(float(scores_for(logits, evaluation.novelty)[0]))
        assert calibrated.novel is novel and calibrated.novel == bool(is_novel(logits, evaluation.novelty)[0])
        np.testing.assert_array_equal(calibrated.probabilities, predict_proba(network, image)[0])
        assert old.novelty_score is None and old.novel is None and unevaluated.novel is None
        np.testing.assert_array_equal(old.probabilities, calibrated.probabilities)
    assert refuse(prediction.novel for prediction in predict_with_each(entries, blob)) is True


def test_an_evaluation_file_without_the_field_still_loads(tmp_path):
    data = json.loads((CHECKPOINT_DIR / "cnn.metrics.json").read_text())
    for added in ("novelty", "format_version", "weights_id"):
        data.pop(added, None)
    evaluation = Evaluation.from_dict(data)
    assert evaluation.novelty is None and evaluation.format_version == 1
    assert Evaluation.from_dict({**data, "novelty": None}).novelty is None


def test_logits_and_probabilities_come_from_one_path(cnn):
    network, _, _ = cnn
    images = torch.from_numpy(np.stack([filled_square(), drawn_seven(), filled_disc()]))
    logits = predict_logits(network, images)
    assert logits.shape == (3, 10) and logits.dtype == np.float32
    np.testing.assert_array_equal(torch.softmax(torch.from_numpy(logits), 1).numpy(), predict_proba(network, images))


@pytest.mark.slow
def test_the_benchmark_runs_and_writes_its_results(mnist_root, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    output = tmp_path / "novelty.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.bench_novelty", "--quick", "--count", "12",
                             "--test-images", "200", "--validation-images", "300", "--model", "mlp", "--model", "cnn",
                             "--json", str(output)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    assert set(results["per_model"]) == {"mlp", "cnn"} and results["validation_images"] == 300
    assert results["per_model"]["cnn"]["noise"] == 1.0  # noise through the MNIST steps: a flat grey square
    assert set(results["page"]) >= {"test", "thin", "small", "dot", "scribble"}
