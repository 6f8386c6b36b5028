"""Per-model evidence (mnist_models.evidence): robustness curves on the shipped cnn, temperature scaling and
calibration figures, selective prediction, disagreements, and the evidence file's round trip and validation."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from mnist_models import evidence as ev
from mnist_models.data import load_mnist
from mnist_models.inference import predict_proba
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.paths import CHECKPOINT_DIR
from mnist_models.store import evidence_records as er
from mnist_models.store.checkpoints import load_checkpoint, load_evaluation
from mnist_models.store.records import RecordError


@pytest.fixture(scope="module")
def cnn():
    return load_checkpoint("cnn")


@pytest.fixture(scope="module")
def test_split(mnist_root):
    return load_mnist("test", mnist_root, download=False)


# --- robustness ----------------------------------------------------------------------------------------------------

def test_corruptions_are_well_formed():
    assert list(ev.CORRUPTIONS) == ["rotation", "shift", "scale", "thickness", "noise", "occlusion", "fgsm"]
    for corruption in ev.CORRUPTIONS.values():
        assert list(corruption.levels) == sorted(corruption.levels)
        assert corruption.clean in corruption.levels
    assert ev.CORRUPTIONS["scale"].levels == (0.6, 0.8, 1.0, 1.2, 1.4) and ev.CORRUPTIONS["scale"].clean == 1.0
    assert ev.CORRUPTIONS["rotation"].levels[0] == ev.CORRUPTIONS["rotation"].clean == 0


def test_robustness_curves_on_the_shipped_cnn(cnn, test_split):
    network, _ = cnn
    images, labels = test_split[0][:300], test_split[1][:300]
    calls = []
    curves = ev.robustness_curves(network, images, labels, corruptions=["rotation", "fgsm"],
                                  progress=lambda done, total: calls.append((done, total)))
    expected = float((predict_proba(network, images).argmax(1) == labels.numpy()).mean())
    assert list(curves) == ["rotation", "fgsm"]
    for curve in curves.values():
        assert curve.accuracy[0] == expected  # the clean level is the plain test accuracy, exactly
        assert curve.clean_accuracy == expected
        assert 0.0 <= curve.score <= 1.0
    rotation, fgsm = curves["rotation"], curves["fgsm"]
    assert rotation.levels == (0, 15, 30, 45, 60)
    assert rotation.accuracy[-1] < rotation.accuracy[0] - 0.3  # 60° is clearly worse
    assert fgsm.accuracy[-1] < fgsm.accuracy[0] - 0.3  # so is ε = 0.3
    assert calls == [(done, 10) for done in range(1, 11)]
    assert 0.0 < er.overall_robustness(curves) < 1.0


def test_unknown_corruption_is_refused(cnn):
    with pytest.raises(ValueError, match="unknown corruption"):
        ev.robustness_curves(cnn[0], np.zeros((2, 28, 28), np.uint8), [0, 1], corruptions=["blur"])


def test_score_is_the_normalised_area():
    assert er.RobustnessCurve("rotation", (0, 15, 30), (0.9, 0.9, 0.9)).score == 1.0
    assert er.RobustnessCurve("rotation", (0, 10), (0.8, 0.0)).score == pytest.approx(0.5)
    # gains over the clean accuracy earn nothing; the clean level may sit in the middle (scale)
    assert er.RobustnessCurve("scale", (0.5, 1.0, 1.5), (1.0, 0.5, 0.5)).score == 1.0
    assert er.RobustnessCurve("scale", (0.5, 1.0, 1.5), (0.0, 0.5, 0.0)).score == pytest.approx(0.5)
    assert er.RobustnessCurve("custom", (3.0,), (0.7,)).score == 1.0
    assert er.RobustnessCurve("rotation", (0, 10), (0.0, 0.0)).score == 0.0


# --- calibration ---------------------------------------------------------------------------------------------------

def _calibrated_toy(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): calibrated at T = 1 by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(count, 10))
    logits[np.arange(count), rng.integers(0, 10, count)] += 4.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(10, p=row) for row in probabilities])
    return logits, labels


def test_temperature_recovers_an_overconfident_scale():
    val_logits, val_labels = _calibrated_toy(8000, seed=0)
    test_logits, test_labels = _calibrated_toy(4000, seed=1)
    assert ev.fit_temperature(val_logits, val_labels) == pytest.approx(1.0, abs=0.1)
    result = ev.calibration(5 * val_logits, val_labels, 5 * test_logits, test_labels)
    assert result.temperature == pytest.approx(5.0, rel=0.1)
    assert result.val_nll_after < result.val_nll_before
    assert result.test_nll_after < result.test_nll_before
    assert result.ece_after < result.ece_before
    assert sum(result.histogram_before) == sum(result.histogram_after) == 4000 == result.count
    assert sum(result.reliability_before.count) == sum(result.reliability_after.count) == 4000
    # dividing by one temperature never changes the answer
    scaled = torch.softmax(torch.as_tensor(5 * test_logits) / result.temperature, dim=1).numpy()
    assert np.array_equal(scaled.argmax(1), test_logits.argmax(1))


@pytest.mark.parametrize("temperature", [0.01, 0.3, 3.0, 100.0])
def test_temperature_scaling_never_changes_the_argmax(temperature):
    logits, labels = _calibrated_toy(500, seed=2)
    fitted = ev.fit_temperature(logits * temperature, labels)
    assert ev.TEMPERATURE_RANGE[0] <= fitted <= ev.TEMPERATURE_RANGE[1]
    assert np.array_equal((logits * temperature / fitted).argmax(1), logits.argmax(1))


def test_uniform_model_by_hand():
    """Every image gets probability 0.1 for each digit: the answer is always 0 (the first of ten equal), with
    confidence 0.1; 3 of the 10 labels are 0, so accuracy 0.3 and ECE |0.3 − 0.1| = 0.2, in the one bin
    (1/15, 2/15]; the histogram puts all ten in [0.10, 0.15); temperature changes nothing."""
    logits = np.zeros((10, 10))
    labels = np.array([0, 0, 0, 1, 2, 3, 4, 5, 6, 7])
    result = ev.calibration(logits, labels, logits, labels)
    assert result.temperature == 1.0
    assert result.ece_before == result.ece_after == pytest.approx(0.2, abs=1e-12)
    for diagram in (result.reliability_before, result.reliability_after):
        assert diagram.count == (10,)
        assert diagram.confidence == pytest.approx((0.1,)) and diagram.accuracy == pytest.approx((0.3,))
    expected_histogram = tuple(10 if index == 2 else 0 for index in range(20))
    assert result.histogram_before == result.histogram_after == expected_histogram
    assert result.test_nll_before == result.val_nll_after == pytest.approx(math.log(10))


def test_ece_by_hand_and_as_the_evaluation_computes_it():
    from mnist_models.evaluation import expected_calibration_error as evaluation_ece

    # two bins of 15: confidences 0.95 (2 right of 2) and 0.55 (1 right of 2) → (2·0.05 + 2·0.05) / 4
    probabilities = np.full((4, 10), 0.0)
    probabilities[:, 0] = [0.95, 0.95, 0.55, 0.55]
    probabilities[:, 1] = 1 - probabilities[:, 0]
    labels = np.array([0, 0, 0, 1])
    assert ev.expected_calibration_error(probabilities, labels) == pytest.approx(0.05)
    logits, toy_labels = _calibrated_toy(2000, seed=3)
    toy = torch.softmax(torch.as_tensor(3 * logits), 1).numpy()
    assert ev.expected_calibration_error(toy, toy_labels) == pytest.approx(evaluation_ece(toy, toy_labels))


# --- selective prediction ------------------------------------------------------------------------------------------

def _probabilities(confidence, predicted) -> np.ndarray:
    rows = np.tile(((1 - np.asarray(confidence)) / 9)[:, None], (1, 10))
    rows[np.arange(len(confidence)), predicted] = confidence
    return rows


def test_selective_on_a_perfect_classifier():
    labels = np.arange(50) % 10
    result = ev.selective_prediction(_probabilities(np.linspace(0.5, 0.99, 50), labels), labels)
    assert result.coverage_at_target == 1.0 and result.threshold == pytest.approx(0.5)
    assert result.aurc == 0.0 and set(result.accuracy) == {1.0}
    assert len(result.coverage) == 101 and result.coverage[0] == 0.01 and result.coverage[-1] == 1.0


def test_selective_by_hand():
    confidence = [0.6, 0.9, 0.5, 0.7, 0.8]  # sorted: 0.9 ✓, 0.8 ✓, 0.7 ✗, 0.6 ✓, 0.5 ✓
    labels = np.array([1, 1, 1, 1, 1])
    predicted = [1, 1, 1, 0, 1]
    probabilities = _probabilities(confidence, predicted)
    strict = ev.selective_prediction(probabilities, labels, target=0.99, points=5)
    assert (strict.threshold, strict.coverage_at_target) == (pytest.approx(0.8), 0.4)
    assert strict.coverage == pytest.approx((0.01, 0.2575, 0.505, 0.7525, 1.0))
    assert strict.accuracy == pytest.approx((1.0, 1.0, 2 / 3, 0.75, 0.8))  # 1, 2, 3, 4, 5 digits answered
    assert strict.aurc == pytest.approx(np.mean([0, 0, 1 / 3, 1 / 4, 1 / 5]))
    loose = ev.selective_prediction(probabilities, labels, target=0.8)
    assert (loose.threshold, loose.coverage_at_target) == (pytest.approx(0.5), 1.0)
    # ties: a threshold takes both 0.8s or neither, so the reachable coverage at 0.99 is 1/3
    tied = ev.selective_prediction(_probabilities([0.9, 0.8, 0.8], [1, 1, 0]), np.array([1, 1, 1]), target=0.99)
    assert (tied.threshold, tied.coverage_at_target) == (pytest.approx(0.9), pytest.approx(1 / 3))
    # the most confident digit is wrong: no threshold reaches the target
    hopeless = ev.selective_prediction(_probabilities([0.9, 0.8], [0, 1]), np.array([1, 1]), target=0.99)
    assert hopeless.threshold is None and hopeless.coverage_at_target is None


# --- disagreements -------------------------------------------------------------------------------------------------

def test_disagreement_counts_match_a_double_loop():
    rng = np.random.default_rng(4)
    predictions = {name: rng.integers(0, 3, 300) for name in ("a", "b", "c", "d")}
    counts = ev.disagreement_counts(predictions)
    values = list(predictions.values())
    brute = [[sum(int(x != y) for x, y in zip(first, second, strict=True)) for second in values]
             for first in values]
    assert counts.dtype.kind == "i" and counts.tolist() == brute
    assert np.array_equal(counts, counts.T) and not np.diag(counts).any()


def test_disagreement_outcome_by_hand():
    labels = np.array([0, 1, 2, 3, 4, 5])
    first = np.array([0, 1, 9, 3, 8, 7])
    second = np.array([0, 7, 2, 5, 9, 7])
    outcome = ev.disagreement_outcome(first, second, labels)
    assert outcome["first_right"].tolist() == [1, 3]
    assert outcome["second_right"].tolist() == [2]
    assert outcome["both_wrong"].tolist() == [4]  # 5: both wrong but they agree, so not a disagreement
    together = np.concatenate(list(outcome.values()))
    assert len(set(together.tolist())) == len(together) == int((first != second).sum())


# --- the record ----------------------------------------------------------------------------------------------------

def _evidence() -> er.Evidence:
    val_logits, val_labels = _calibrated_toy(1000, seed=5)
    test_logits, test_labels = _calibrated_toy(1000, seed=6)
    curves = {name: er.RobustnessCurve(name, tuple(map(float, corruption.levels)),
                                       tuple(0.99 - 0.1 * index / 3 for index in range(len(corruption.levels))),
                                       float(corruption.clean))
              for name, corruption in ev.CORRUPTIONS.items()}
    probabilities = torch.softmax(torch.as_tensor(3 * test_logits), 1).numpy()
    return er.Evidence("cnn", "cnn.pt", curves, ev.calibration(3 * val_logits, val_labels, 3 * test_logits,
                                                               test_labels),
                       ev.selective_prediction(probabilities, test_labels, target=0.99), "2026-01-01T00:00:00+00:00",
                       {"torch": torch.__version__})


def test_evidence_round_trips_and_stays_small(tmp_path):
    evidence = _evidence()
    path = er.save_evidence(er.evidence_path(tmp_path / "cnn.pt"), evidence)
    assert path == tmp_path / "cnn.evidence.json"
    loaded = er.load_evidence(path)
    assert loaded.to_dict() == evidence.to_dict()
    assert loaded == er.Evidence.from_dict(json.loads(json.dumps(evidence.to_dict())))
    assert loaded.calibration.temperature == pytest.approx(evidence.calibration.temperature, abs=1e-5)
    assert loaded.robustness["scale"].clean_level == 1.0
    assert loaded.overall_robustness == pytest.approx(evidence.overall_robustness, abs=1e-4)
    assert path.stat().st_size < 20_000


def test_partial_file_loads_with_missing_parts_none(tmp_path):
    full = _evidence().to_dict()
    path = tmp_path / "cnn.evidence.json"
    path.write_text(json.dumps({"model": "cnn", "checkpoint": "cnn.pt", "calibration": full["calibration"],
                                "something_new": [1, 2]}))
    loaded = er.load_evidence(path)
    assert loaded.robustness is None and loaded.selective is None and loaded.overall_robustness is None
    assert loaded.calibration == er.Calibration.from_dict(full["calibration"])
    assert loaded.format_version == 1 and loaded.created == "" and loaded.versions == {}


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "cannot read"),
    ("[1, 2]", "should be a JSON object"),
    ('{"checkpoint": "cnn.pt"}', "'model' is missing"),
    ('{"model": "cnn", "checkpoint": "cnn.pt", "format_version": 99}', "newer"),
    ('{"model": "cnn", "checkpoint": "cnn.pt", "robustness": {"rotation": {"levels": ["a"], "accuracy": [1]}}}',
     "rotation"),
    ('{"model": "cnn", "checkpoint": "cnn.pt", "robustness": {"rotation": {"levels": [0, 1], "accuracy": [1]}}}',
     "as many"),
    ('{"model": "cnn", "checkpoint": "cnn.pt", "selective": {"target": "high"}}', "'target'"),
    ('{"model": "cnn", "checkpoint": "cnn.pt", "calibration": {"temperature": 1}}', "missing"),
])
def test_bad_files_raise_record_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "mlp.evidence.json"
    path.write_text(content)
    with pytest.raises(RecordError, match=message) as raised:
        er.load_evidence(path)
    assert "mlp.evidence.json" in str(raised.value)


def test_missing_file_raises_record_error(tmp_path):
    with pytest.raises(RecordError, match="nothing.evidence.json"):
        er.load_evidence(tmp_path / "nothing.evidence.json")


def test_merge_keeps_the_parts_not_recomputed():
    old = _evidence()
    new = er.Evidence("cnn", "cnn.pt", None, None, old.selective, "2026-02-02T00:00:00+00:00", {})
    merged = er.merge(old, new)
    assert merged.robustness == old.robustness and merged.calibration == old.calibration
    assert merged.selective is new.selective and merged.created == new.created
    assert er.merge(None, new) is new


def test_merge_drops_the_evidence_of_other_weights():
    old = dataclasses.replace(_evidence(), weights_id="before")
    new = er.Evidence("cnn", "cnn.pt", None, None, old.selective, "2026-02-02T00:00:00+00:00", {}, weights_id="after")
    assert er.merge(old, new) is new
    same = dataclasses.replace(new, weights_id="before")
    assert er.merge(old, same).robustness == old.robustness


def test_compute_evidence_on_a_few_real_digits(cnn, test_split, tmp_path):
    network, meta = cnn
    images, labels = test_split[0][:120], test_split[1][:120]
    validation = (test_split[0][-300:], test_split[1][-300:])  # any held-out digits do for the mechanics
    evidence = ev.compute_evidence(network, meta, (images, labels), validation)
    assert set(evidence.robustness) == set(ev.CORRUPTIONS)
    accuracy = float((predict_proba(network, images).argmax(1) == labels.numpy()).mean())
    assert {curve.clean_accuracy for curve in evidence.robustness.values()} == {accuracy}
    assert evidence.calibration.count == 120 and evidence.selective is not None
    assert evidence.model == "cnn" and evidence.checkpoint == "cnn.pt" and evidence.weights_id == meta.weights_id
    path = er.save_evidence(tmp_path / "cnn.evidence.json", evidence)
    assert path.stat().st_size < 100_000
    assert er.load_evidence(path).to_dict() == evidence.to_dict()

    without_validation = ev.compute_evidence(network, meta, (images, labels), None,
                                             parts=("calibration", "selective"))
    assert without_validation.robustness is None and without_validation.calibration is None
    assert without_validation.selective == evidence.selective
    with pytest.raises(ValueError, match="unknown evidence part"):
        ev.compute_evidence(network, meta, (images, labels), None, parts=("speed",))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_shipped_evidence_starts_every_curve_at_the_saved_test_accuracy(name):
    """The clean level of each robustness curve is the saved evaluation's accuracy, exactly (the same folded copy,
    the same 10,000 digits), and the calibration covers those digits."""
    evidence = er.load_evidence(er.evidence_path(CHECKPOINT_DIR / f"{name}.pt"))
    accuracy = load_evaluation(name).metrics.accuracy
    assert {curve.clean_accuracy for curve in evidence.robustness.values()} == {round(accuracy, 5)}
    assert evidence.calibration.count == 10_000 and evidence.selective is not None
