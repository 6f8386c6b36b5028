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
import sklearn
import torch
import torchvision

from ..errors import DigitLabError
from ..timing import Percentiles

RECORD_VERSION = 2
"""Version 1 had no ``format_version`` key; version 2 added it and ``weights_id``. Both read the same way."""
DIGITS = [str(digit) for digit in range(10)]
CURVES = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")  # what a training history plots


class RecordError(DigitLabError, ValueError):
    """A record file whose content is not a record of this kind; the message names the offending field."""


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _describe(kinds: type | tuple[type, ...]) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(kind.__name__ for kind in kinds)


def _get(data: Mapping[str, Any], name: str, kinds: type | tuple[type, ...], required: bool = False) -> Any:
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


def _mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise RecordError(f"{what} should be a JSON object, not {type(data).__name__}")
    return data


def _format_version(data: Mapping[str, Any]) -> int:
    version = _get(data, "format_version", int) or 1
    if version > RECORD_VERSION:
        raise RecordError(f"format version {version} is newer than this digit-lab reads ({RECORD_VERSION}); "
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
        data = _mapping(data, "checkpoint metadata")
        version = _format_version(data)
        run = _get(data, "run", dict)
        if run is not None:
            run = RunInfo(_get(run, "id", str, required=True), _get(run, "title", str, required=True))
        history = _get(data, "history", dict) or {}
        if not all(isinstance(values, list) for values in history.values()):
            raise RecordError("the field 'history' should map each curve to a list of numbers")
        return cls(
            model=_get(data, "model", str, required=True), weights_id=_get(data, "weights_id", str),
            title=_get(data, "title", str),
            architecture=_get(data, "architecture", dict) or {}, training=_get(data, "training", dict) or {},
            epochs_completed=_get(data, "epochs_completed", int), cancelled=_get(data, "cancelled", bool),
            history=history, initialisation=_get(data, "initialisation", str),
            parameters=_get(data, "parameters", int), dataset=_get(data, "dataset", dict) or {},
            device=_get(data, "device", str), train_time_s=_get(data, "train_time_s", float),
            created=_get(data, "created", str), versions=_get(data, "versions", dict) or {}, run=run,
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
        data = _mapping(data, "the training summary")
        kinds = {"epochs_completed": int, "train_time_s": float, "created": str, "initialisation": str,
                 "device": str, "cancelled": bool}
        return cls(**{name: _get(data, name, kind) for name, kind in kinds.items()})


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
        data = _mapping(data, "the metrics")
        auc = _mapping(_get(data, "auc", dict, required=True), "the field 'auc'")
        matrix = _get(data, "confusion_matrix", list, required=True)
        if len(matrix) != 10 or not all(isinstance(row, list) and len(row) == 10 for row in matrix):
            raise RecordError("the field 'confusion_matrix' should be 10 rows of 10 counts")
        per_class = _get(data, "per_class", dict, required=True)
        for digit in DIGITS:
            scores = _mapping(per_class.get(digit), f"the per-class scores of digit {digit}")
            for score in ("precision", "recall", "f1"):
                _get(scores, score, float, required=True)
        roc = _get(data, "roc", dict, required=True)
        class_auc = _get(auc, "per_class", dict, required=True)
        for curve in roc:
            points = _mapping(roc[curve], f"the ROC curve {curve!r}")
            if len(_get(points, "fpr", list, required=True)) != len(_get(points, "tpr", list, required=True)):
                raise RecordError(f"the ROC curve {curve!r} has fpr and tpr of different lengths")
            if curve != "micro" and not isinstance(class_auc.get(curve), (int, float)):
                raise RecordError(f"the ROC curve of digit {curve} has no AUC in 'auc.per_class'")
        if "micro" not in roc:
            raise RecordError("the field 'roc' has no micro-average curve")
        return cls(
            accuracy=_get(data, "accuracy", float, required=True), errors=_get(data, "errors", int, required=True),
            count=_get(data, "count", int, required=True), per_class=per_class,
            macro_f1=_get(data, "macro_f1", float, required=True), confusion_matrix=matrix, roc=roc,
            auc=AreaUnderCurve(class_auc, _get(auc, "macro", float, required=True),
                               _get(auc, "micro", float, required=True)),
            log_loss=_get(data, "log_loss", float, required=True), ece=_get(data, "ece", float, required=True),
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
        data = _mapping(data, "the latency")
        single = _mapping(_get(data, "single", dict, required=True), "the field 'single'")
        batch = _mapping(_get(data, "batch", dict, required=True), "the field 'batch'")
        return cls(_percentiles(single), _percentiles(batch), _get(batch, "size", int, required=True),
                   _get(data, "threads", int), _get(data, "device", str))


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
        data = _mapping(data, "the field 'novelty'")
        score = _get(data, "score", str, required=True)
        if score not in NOVELTY_SCORES:
            raise RecordError(f"the novelty score {score!r} is not one of {', '.join(NOVELTY_SCORES)}")
        quantiles = _get(data, "quantiles", dict) or {}
        for level, value in quantiles.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise RecordError(f"the novelty quantile {level!r} should be float, not {type(value).__name__}")
        return cls(
            score=score, threshold=_get(data, "threshold", float, required=True),
            false_rejection_rate=_get(data, "false_rejection_rate", float, required=True),
            count=_get(data, "count", int, required=True), quantiles=quantiles,
            temperature=_get(data, "temperature", float), validation_sha256=_get(data, "validation_sha256", str),
            calibrated=_get(data, "calibrated", str),
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
        data = _mapping(data, "an evaluation")
        version = _format_version(data)
        trained = _get(data, "trained", dict)
        latency = _get(data, "latency", dict)
        novelty = _get(data, "novelty", dict)
        metrics = ClassificationMetrics.from_dict(_get(data, "metrics", dict, required=True))
        for per_image in ("predictions", "confidence"):
            values = _get(data, per_image, list)
            if values is not None and len(values) != metrics.count:
                raise RecordError(f"the field {per_image!r} has {len(values)} entries for {metrics.count} images")
        return cls(
            model=_get(data, "model", str, required=True), metrics=metrics,
            weights_id=_get(data, "weights_id", str), checkpoint=_get(data, "checkpoint", str),
            trained=TrainingSummary.from_dict(trained) if trained is not None else TrainingSummary(),
            evaluated=_get(data, "evaluated", str), test_sha256=_get(data, "test_sha256", str),
            parameters=_get(data, "parameters", int), predictions=_get(data, "predictions", list),
            confidence=_get(data, "confidence", list), versions=_get(data, "versions", dict) or {},
            size_bytes=_get(data, "size_bytes", int),
            latency=Latency.from_dict(latency) if latency is not None else None,
            novelty=NoveltyThreshold.from_dict(novelty) if novelty is not None else None,
            format_version=version,
        )


def _percentiles(data: Mapping[str, Any]) -> Percentiles:
    return Percentiles(_get(data, "p50_ms", float, required=True), _get(data, "p95_ms", float, required=True))


def _field_names(cls: type) -> list[str]:
    return [item.name for item in dataclasses.fields(cls)]
