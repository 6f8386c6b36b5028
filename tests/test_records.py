"""The typed records: round trips, files from older versions and partial files, and refusals that name the field."""

import json

import pytest

from mnist_models.paths import CHECKPOINT_DIR
from mnist_models.store.records import RECORD_VERSION, CheckpointMeta, Evaluation, RecordError, RunInfo, TrainingSummary


def shipped_evaluation_dict() -> dict:
    """A real evaluation file as the first version of the project wrote it: the shipped one without what later
    versions added (format_version and weights_id in version 2, then the optional novelty threshold)."""
    data = json.loads((CHECKPOINT_DIR / "cnn.metrics.json").read_text())
    for added in ("format_version", "weights_id", "novelty"):
        data.pop(added, None)
    return data


NOVELTY = {"score": "energy", "threshold": -6.5, "false_rejection_rate": 0.01, "count": 5000,
           "quantiles": {"0.5": -15.3, "0.99": -6.5}, "temperature": 1.0}


def test_a_version_1_evaluation_reads_and_writes_back_the_same_fields():
    data = shipped_evaluation_dict()
    assert "format_version" not in data
    evaluation = Evaluation.from_dict(data)
    assert evaluation.format_version == 1 and evaluation.metrics.accuracy == data["metrics"]["accuracy"]
    assert evaluation.latency.single.p50_ms == data["latency"]["single"]["p50_ms"]
    assert evaluation.latency.batch_size == data["latency"]["batch"]["size"]
    assert evaluation.trained.epochs_completed == data["trained"]["epochs_completed"]
    assert evaluation.novelty is None  # not calibrated then: the page answers without that evidence
    written = evaluation.to_dict()
    assert written["format_version"] == RECORD_VERSION and written["weights_id"] is None
    assert written["novelty"] is None
    assert {key: value for key, value in written.items()
            if key not in ("format_version", "weights_id", "novelty")} == data


def test_an_evaluation_without_the_optional_parts_reads_them_as_unknown():
    data = shipped_evaluation_dict()
    partial = {"model": "cnn", "metrics": data["metrics"]}
    evaluation = Evaluation.from_dict(partial)
    assert evaluation.latency is None and evaluation.predictions is None and evaluation.size_bytes is None
    assert evaluation.trained == TrainingSummary() and evaluation.format_version == 1
    assert Evaluation.from_dict(evaluation.to_dict()) == evaluation


def test_an_evaluation_with_a_novelty_threshold_round_trips():
    evaluation = Evaluation.from_dict({**shipped_evaluation_dict(), "novelty": NOVELTY})
    assert evaluation.novelty.threshold == -6.5 and evaluation.novelty.quantiles["0.99"] == -6.5
    assert evaluation.novelty.validation_sha256 is None and evaluation.novelty.calibrated is None  # partial: unknown
    assert Evaluation.from_dict(json.loads(json.dumps(evaluation.to_dict()))) == evaluation


@pytest.mark.parametrize(("change", "message"), [
    (lambda data: data["metrics"].pop("accuracy"), "'accuracy' is missing"),
    (lambda data: data["metrics"].update(confusion_matrix=[[1, 2]]), "10 rows of 10 counts"),
    (lambda data: data.update(predictions="7 2 1"), "'predictions' should be list"),
    (lambda data: data["metrics"].update(errors=True), "'errors' should be int, not bool"),
    (lambda data: data.update(format_version=RECORD_VERSION + 1, metrics=None), "newer than this digit-lab reads"),
    (lambda data: data["metrics"]["per_class"].pop("7"), "per-class scores of digit 7 should be a JSON object"),
    (lambda data: data["metrics"]["per_class"]["3"].pop("recall"), "'recall' is missing"),
    (lambda data: data["metrics"]["roc"].pop("micro"), "no micro-average curve"),
    (lambda data: data["metrics"]["auc"]["per_class"].pop("4"), "digit 4 has no AUC"),
    (lambda data: data["metrics"]["roc"]["2"]["tpr"].pop(), "fpr and tpr of different lengths"),
    (lambda data: data["confidence"].pop(), "'confidence' has 9999 entries for 10000 images"),
    (lambda data: data.update(novelty=[1.0]), "'novelty' should be dict"),
    (lambda data: data.update(novelty={"score": "energy", "false_rejection_rate": 0.01, "count": 5}),
     "'threshold' is missing"),
    (lambda data: data.update(novelty={**NOVELTY, "score": "mahalanobis"}), "novelty score 'mahalanobis' is not"),
    (lambda data: data.update(novelty={**NOVELTY, "quantiles": {"0.99": "high"}}), "quantile '0.99' should be float"),
])
def test_a_broken_evaluation_is_refused_naming_what_is_wrong(change, message):
    data = shipped_evaluation_dict()
    change(data)
    with pytest.raises(RecordError, match=message):
        Evaluation.from_dict(data)


def test_a_history_is_plotted_only_when_every_curve_has_a_value_per_epoch():
    curves = {"epoch": [1, 2], "train_loss": [0.5, 0.3], "train_accuracy": [0.9, 0.95], "val_loss": [0.4, 0.35],
              "val_accuracy": [0.92, 0.94]}
    assert CheckpointMeta(model="cnn", history=curves).has_curves
    assert not CheckpointMeta(model="cnn").has_curves
    assert not CheckpointMeta(model="cnn", history={**curves, "val_loss": [0.4]}).has_curves
    assert not CheckpointMeta(model="cnn", history={"epoch": [1, 2]}).has_curves


def test_checkpoint_metadata_round_trips_and_keeps_its_run():
    meta = CheckpointMeta(model="mlp", title="MLP", epochs_completed=2, cancelled=True, train_time_s=3.5,
                          history={"epoch": [1, 2]}, run=RunInfo("run004-mlp", "MLP · run 4"))
    data = meta.to_dict()
    assert data["run"] == {"id": "run004-mlp", "title": "MLP · run 4"} and "path" not in data
    assert data["format_version"] == RECORD_VERSION
    assert CheckpointMeta.from_dict(json.loads(json.dumps(data))) == meta


@pytest.mark.parametrize(("data", "message"), [
    ([], "should be a JSON object"),
    ({"title": "CNN"}, "'model' is missing"),
    ({"model": "cnn", "history": {"epoch": 3}}, "'history' should map each curve"),
    ({"model": "cnn", "train_time_s": "fast"}, "'train_time_s' should be float"),
    ({"model": "cnn", "run": {"id": "run001-cnn"}}, "'title' is missing"),
    ({"format_version": RECORD_VERSION + 1}, "newer than this digit-lab reads"),
])
def test_broken_checkpoint_metadata_is_refused_naming_what_is_wrong(data, message):
    with pytest.raises(RecordError, match=message):
        CheckpointMeta.from_dict(data)
