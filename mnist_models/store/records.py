"""The records digit-lab keeps on disk, as typed dataclasses with one name each.

- ``CheckpointMeta``: how a checkpoint's weights were made (inside the ``.pt`` file, as JSON).
- ``Evaluation``: what those weights scored on the test set (the ``.metrics.json`` file beside it), with the
  ``NoveltyThreshold`` calibrated on the validation digits (optional: older files have none).

Both carry a ``format_version``. Reading is tolerant: a file from an older version of the project, or one written by
hand with only some fields, loads with the missing fields as ``None`` (shown as "unknown"); a field of the wrong
type, or a missing field nothing can be shown without, is a ``RecordError`` naming it, so that one model becomes
unavailable with a reason instead of breaking a page.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DigitLabError
from ..timing import Percentiles

RECORD_VERSION = 2
"""Version 1 had no ``format_version`` key; version 2 added it and ``weights_id``. Both read the same way."""
DIGITS = [str(digit) for digit in range(10)]
CURVES = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")  # what a training history plots


class RecordError(DigitLabError, ValueError):
    """A record file whose content is not a record of this kind; the message names the offending field."""


def library_versions() -> dict[str, str]:
    """The versions a record was made with. Torchvision and scikit-learn are imported here, when a record is
    written, not by every process that reads one (1-2 s each)."""
    import sklearn
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _describe(kinds: type | tuple[type, ...]) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(kind.__name__ for kind in kinds)


def field_of(data: Mapping[str, Any], name: str, kinds: type | tuple[type, ...], required: bool = False) -> Any:
    """``data[name]`` checked against ``kinds``; None when absent (or a RecordError when ``required``).

    An int is accepted where a float is expected; a bool is never taken for a number.
    """
    value = data.get(name)
    if value is None:
        if required:
            raise RecordError(f"the field {name!r} is missing")
        return None
    accepted = kinds if isinstance(kinds, tuple) else (kinds,)
    if float in accepted:
        accepted = (*accepted, int)
    if isinstance(value, bool) and bool not in accepted or not isinstance(value, accepted):
        raise RecordError(f"the field {name!r} should be {_describe(kinds)}, not {type(value).__name__}")
    return value


def as_mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise RecordError(f"{what} should be a JSON object, not {type(data).__name__}")
    return data


def check_version(version: Any, readable: int, what: str) -> int:
    """``version`` (None: 1, files from before versions were written) when this digit-lab reads it; otherwise a
    RecordError that says ``what`` was written by a newer digit-lab. The one version check of every record."""
    version = 1 if version is None else version
    if not isinstance(version, int) or isinstance(version, bool) or version > readable:
        raise RecordError(f"{what}: format version {version} is newer than this digit-lab reads ({readable}); "
                          f"update digit-lab")
    return version


@dataclass(frozen=True)
class RunInfo:
    """Set on checkpoints the Train page saved as runs."""

    id: str
    title: str


@dataclass
class CheckpointMeta:
    """How a checkpoint was made: what was trained, how, on what data, with which libraries."""

    model: str  # the registry name of the architecture
    weights_id: str | None = None  # new for every save; the evaluation of these weights carries the same id
    title: str | None = None
    architecture: dict[str, Any] = field(default_factory=dict)  # the hyperparameters the weights were built with
    training: dict[str, Any] = field(default_factory=dict)  # the TrainConfig that produced them
    epochs_completed: int | None = None
    cancelled: bool | None = None
    history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch curves, as TrainResult.history
    initialisation: str | None = None
    parameters: int | None = None
    dataset: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    train_time_s: float | None = None
    created: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    run: RunInfo | None = None
    format_version: int = field(default=RECORD_VERSION, compare=False)  # as read; always written as the current
    path: Path | None = field(default=None, compare=False)  # where it was read from; never stored

    @property
    def dataset_name(self) -> str:
        """The data layer's name of the dataset the weights were trained on. Records written before there was a
        second dataset have no setting and name it by its title ('MNIST'), or not at all: those are MNIST's."""
        return str(self.training.get("dataset") or self.dataset.get("name") or "mnist").lower()

    @property
    def has_curves(self) -> bool:
        """Whether the history holds every curve of CURVES, one value per epoch (old or partial files may not)."""
        lengths = {len(self.history.get(curve, ())) for curve in CURVES}
        return len(lengths) == 1 and lengths != {0}

    def to_dict(self) -> dict[str, Any]:
        """The record in the current format, whatever version it was read from."""
        data = {**dataclasses.asdict(self), "format_version": RECORD_VERSION}
        data.pop("path")
        if self.run is None:
            data.pop("run")
        return data

    @classmethod
    def from_dict(cls, data: Any) -> CheckpointMeta:
        data = as_mapping(data, "checkpoint metadata")
        version = check_version(field_of(data, "format_version", int), RECORD_VERSION, "the checkpoint metadata")
        run = field_of(data, "run", dict)
        if run is not None:
            run = RunInfo(field_of(run, "id", str, required=True), field_of(run, "title", str, required=True))
        history = field_of(data, "history", dict) or {}
        if not all(isinstance(values, list) for values in history.values()):
            raise RecordError("the field 'history' should map each curve to a list of numbers")
        return cls(
            model=field_of(data, "model", str, required=True), weights_id=field_of(data, "weights_id", str),
            title=field_of(data, "title", str),
            architecture=field_of(data, "architecture", dict) or {}, training=field_of(data, "training", dict) or {},
            epochs_completed=field_of(data, "epochs_completed", int), cancelled=field_of(data, "cancelled", bool),
            history=history, initialisation=field_of(data, "initialisation", str),
            parameters=field_of(data, "parameters", int), dataset=field_of(data, "dataset", dict) or {},
            device=field_of(data, "device", str), train_time_s=field_of(data, "train_time_s", float),
            created=field_of(data, "created", str), versions=field_of(data, "versions", dict) or {}, run=run,
            format_version=version,
        )


@dataclass(frozen=True)
class TrainingSummary:
    """The few facts about training that tables show next to the test figures (copied from CheckpointMeta)."""

    epochs_completed: int | None = None
    train_time_s: float | None = None
    created: str | None = None
    initialisation: str | None = None
    device: str | None = None
    cancelled: bool | None = None

    @classmethod
    def of(cls, meta: CheckpointMeta) -> TrainingSummary:
        return cls(**{name: getattr(meta, name) for name in _field_names(cls)})

    @classmethod
    def from_dict(cls, data: Any) -> TrainingSummary:
        data = as_mapping(data, "the training summary")
        kinds = {"epochs_completed": int, "train_time_s": float, "created": str, "initialisation": str,
                 "device": str, "cancelled": bool}
        return cls(**{name: field_of(data, name, kind) for name, kind in kinds.items()})


@dataclass(frozen=True)
class AreaUnderCurve:
    per_class: dict[str, float]  # digit ("0".."9") → one-vs-rest ROC AUC
    macro: float
    micro: float


@dataclass(frozen=True)
class ClassificationMetrics:
    """scikit-learn's view of a model's test-set predictions."""

    accuracy: float
    errors: int
    count: int  # images evaluated
    per_class: dict[str, dict[str, float]]  # digit → precision, recall, f1, support
    macro_f1: float
    confusion_matrix: list[list[int]]  # [true][predicted]
    roc: dict[str, dict[str, list[float]]]  # digit or "micro" → fpr, tpr (thinned for plotting)
    auc: AreaUnderCurve
    log_loss: float
    ece: float  # expected calibration error

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ClassificationMetrics:
        data = as_mapping(data, "the metrics")
        auc = as_mapping(field_of(data, "auc", dict, required=True), "the field 'auc'")
        matrix = field_of(data, "confusion_matrix", list, required=True)
        if len(matrix) != 10 or not all(isinstance(row, list) and len(row) == 10 for row in matrix):
            raise RecordError("the field 'confusion_matrix' should be 10 rows of 10 counts")
        per_class = field_of(data, "per_class", dict, required=True)
        for digit in DIGITS:
            scores = as_mapping(per_class.get(digit), f"the per-class scores of digit {digit}")
            for score in ("precision", "recall", "f1"):
                field_of(scores, score, float, required=True)
        roc = field_of(data, "roc", dict, required=True)
        class_auc = field_of(auc, "per_class", dict, required=True)
        for curve in roc:
            points = as_mapping(roc[curve], f"the ROC curve {curve!r}")
            if len(field_of(points, "fpr", list, required=True)) != len(field_of(points, "tpr", list, required=True)):
                raise RecordError(f"the ROC curve {curve!r} has fpr and tpr of different lengths")
            if curve != "micro" and not isinstance(class_auc.get(curve), (int, float)):
                raise RecordError(f"the ROC curve of digit {curve} has no AUC in 'auc.per_class'")
        if "micro" not in roc:
            raise RecordError("the field 'roc' has no micro-average curve")
        return cls(
            accuracy=field_of(data, "accuracy", float, required=True),
            errors=field_of(data, "errors", int, required=True),
            count=field_of(data, "count", int, required=True), per_class=per_class,
            macro_f1=field_of(data, "macro_f1", float, required=True), confusion_matrix=matrix, roc=roc,
            auc=AreaUnderCurve(class_auc, field_of(auc, "macro", float, required=True),
                               field_of(auc, "micro", float, required=True)),
            log_loss=field_of(data, "log_loss", float, required=True), ece=field_of(data, "ece", float, required=True),
        )


@dataclass(frozen=True)
class Latency:
    """Wall-clock inference time through predict_proba, for one image and for a batch."""

    single: Percentiles
    batch: Percentiles
    batch_size: int
    threads: int | None = None
    device: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"single": self.single.to_dict(), "batch": {**self.batch.to_dict(), "size": self.batch_size},
                "threads": self.threads, "device": self.device}

    @classmethod
    def from_dict(cls, data: Any) -> Latency:
        data = as_mapping(data, "the latency")
        single = as_mapping(field_of(data, "single", dict, required=True), "the field 'single'")
        batch = as_mapping(field_of(data, "batch", dict, required=True), "the field 'batch'")
        return cls(_percentiles(single), _percentiles(batch), field_of(batch, "size", int, required=True),
                   field_of(data, "threads", int), field_of(data, "device", str))


NOVELTY_SCORES = ("energy", "max_logit", "msp")
"""The out-of-distribution scores ``mnist_models.novelty`` computes from logits; higher is less like a digit."""


@dataclass(frozen=True)
class NoveltyThreshold:
    """Where a model's out-of-distribution score stops looking like a digit, calibrated on validation digits the
    weights never trained on: at most ``false_rejection_rate`` of those score above ``threshold``."""

    score: str  # one of NOVELTY_SCORES
    threshold: float  # an input whose score is above it is "novel": unlike the digits the model was trained on
    false_rejection_rate: float  # the share of validation digits the threshold was set to reject (e.g. 0.01)
    count: int  # validation images scored
    quantiles: dict[str, float] = field(default_factory=dict)  # level ("0.99") → that quantile of their scores
    temperature: float | None = None  # the energy score's T
    validation_sha256: str | None = None  # of the validation images scored (their bytes)
    calibrated: str | None = None  # when

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> NoveltyThreshold:
        data = as_mapping(data, "the field 'novelty'")
        score = field_of(data, "score", str, required=True)
        if score not in NOVELTY_SCORES:
            raise RecordError(f"the novelty score {score!r} is not one of {', '.join(NOVELTY_SCORES)}")
        quantiles = field_of(data, "quantiles", dict) or {}
        for level, value in quantiles.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise RecordError(f"the novelty quantile {level!r} should be float, not {type(value).__name__}")
        return cls(
            score=score, threshold=field_of(data, "threshold", float, required=True),
            false_rejection_rate=field_of(data, "false_rejection_rate", float, required=True),
            count=field_of(data, "count", int, required=True), quantiles=quantiles,
            temperature=field_of(data, "temperature", float),
            validation_sha256=field_of(data, "validation_sha256", str),
            calibrated=field_of(data, "calibrated", str),
        )


@dataclass
class Evaluation:
    """A checkpoint's test-set evaluation, saved beside it. Per-image predictions and confidences are kept so pages
    can build galleries without running the model."""

    model: str  # the registry name of the architecture
    metrics: ClassificationMetrics
    weights_id: str | None = None  # the CheckpointMeta.weights_id of the weights evaluated
    checkpoint: str | None = None  # the checkpoint file's name
    trained: TrainingSummary = field(default_factory=TrainingSummary)
    evaluated: str | None = None
    test_sha256: str | None = None
    parameters: int | None = None
    predictions: list[int] | None = None  # per test image
    confidence: list[float] | None = None  # per test image: the top probability
    versions: dict[str, str] = field(default_factory=dict)
    size_bytes: int | None = None  # of the checkpoint file
    latency: Latency | None = None
    novelty: NoveltyThreshold | None = None  # None: not calibrated (older files, or no validation data)
    format_version: int = field(default=RECORD_VERSION, compare=False)  # as read; always written as the current

    def to_dict(self) -> dict[str, Any]:
        """The record in the current format, whatever version it was read from."""
        data = {name: getattr(self, name) for name in _field_names(type(self))}
        data.update(metrics=self.metrics.to_dict(), trained=dataclasses.asdict(self.trained),
                    latency=self.latency.to_dict() if self.latency is not None else None,
                    novelty=self.novelty.to_dict() if self.novelty is not None else None,
                    format_version=RECORD_VERSION)
        return data

    def summary(self) -> dict[str, Any]:
        """The record without its per-image lists: what a person reads (``evaluate --json``)."""
        return {key: value for key, value in self.to_dict().items() if key not in ("predictions", "confidence")}

    @classmethod
    def from_dict(cls, data: Any) -> Evaluation:
        data = as_mapping(data, "an evaluation")
        version = check_version(field_of(data, "format_version", int), RECORD_VERSION, "the evaluation")
        trained = field_of(data, "trained", dict)
        latency = field_of(data, "latency", dict)
        novelty = field_of(data, "novelty", dict)
        metrics = ClassificationMetrics.from_dict(field_of(data, "metrics", dict, required=True))
        for per_image in ("predictions", "confidence"):
            values = field_of(data, per_image, list)
            if values is not None and len(values) != metrics.count:
                raise RecordError(f"the field {per_image!r} has {len(values)} entries for {metrics.count} images")
        return cls(
            model=field_of(data, "model", str, required=True), metrics=metrics,
            weights_id=field_of(data, "weights_id", str), checkpoint=field_of(data, "checkpoint", str),
            trained=TrainingSummary.from_dict(trained) if trained is not None else TrainingSummary(),
            evaluated=field_of(data, "evaluated", str), test_sha256=field_of(data, "test_sha256", str),
            parameters=field_of(data, "parameters", int), predictions=field_of(data, "predictions", list),
            confidence=field_of(data, "confidence", list), versions=field_of(data, "versions", dict) or {},
            size_bytes=field_of(data, "size_bytes", int),
            latency=Latency.from_dict(latency) if latency is not None else None,
            novelty=NoveltyThreshold.from_dict(novelty) if novelty is not None else None,
            format_version=version,
        )


def _percentiles(data: Mapping[str, Any]) -> Percentiles:
    return Percentiles(field_of(data, "p50_ms", float, required=True), field_of(data, "p95_ms", float, required=True))


def _field_names(cls: type) -> list[str]:
    return [item.name for item in dataclasses.fields(cls)]
