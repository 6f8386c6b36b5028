"""The evidence record: what ``mnist_models.evidence`` computed for one checkpoint, as typed dataclasses saved as
``<checkpoint>.evidence.json`` beside it (a few tens of KB: curves and histograms only, never per-image arrays).

Read like every record (see ``records``): a missing part is None, a malformed one is a ``RecordError`` that names it,
and a file from a newer digit-lab is refused. ``merge`` lets a partial recomputation keep the parts it did not redo.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoints import CHECKPOINT_SUFFIX
from .files import write_json
from .records import RecordError, as_mapping, check_version, field_of

EVIDENCE_SUFFIX = ".evidence.json"
EVIDENCE_VERSION = 1
"""The format written; a file with a larger ``format_version`` is refused (written by a newer digit-lab)."""
DECIMALS = 5  # floats are stored rounded: the charts need no more, and the files stay small
CLEAN_LEVELS = {"rotation": 0, "shift": 0, "scale": 1.0, "thickness": 0, "noise": 0, "occlusion": 0, "fgsm": 0}
"""The level of each corruption that changes nothing; curves written before they carried their own read it here."""


@dataclass(frozen=True)
class RobustnessCurve:
    """Test accuracy at each level of one corruption."""

    corruption: str
    levels: tuple[float, ...]
    accuracy: tuple[float, ...]
    clean: float | None = None  # the neutral level; None: the corruption's in CORRUPTIONS, else the first level

    @property
    def clean_level(self) -> float:
        if self.clean is not None:
            return self.clean
        known = CLEAN_LEVELS.get(self.corruption)
        return known if known is not None and known in self.levels else self.levels[0]

    @property
    def clean_accuracy(self) -> float:
        return self.accuracy[self.levels.index(self.clean_level)]

    @property
    def score(self) -> float:
        """Normalised area under the accuracy curve: ∫ min(acc, clean acc) / clean acc over the levels (trapezoid),
        divided by the level range. 1.0: no loss at any level; gains over the clean accuracy earn nothing, so the
        score stays in [0, 1]. A single level scores 1.0; a model with no clean accuracy scores 0."""
        clean = self.clean_accuracy
        if len(self.levels) < 2:
            return 1.0
        if clean <= 0:
            return 0.0
        order = np.argsort(self.levels)
        levels = np.asarray(self.levels, dtype=float)[order]
        relative = np.minimum(np.asarray(self.accuracy, dtype=float)[order], clean) / clean
        span = levels[-1] - levels[0]
        if span <= 0:
            return float(relative.mean())
        return float(np.clip(np.trapezoid(relative, levels) / span, 0.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        return {"corruption": self.corruption, "levels": _rounded(self.levels),
                "accuracy": _rounded(self.accuracy), "clean": self.clean_level}

    @classmethod
    def from_dict(cls, data: Any, name: str) -> RobustnessCurve:
        data = as_mapping(data, f"the robustness curve {name!r}")
        levels = _numbers(data, "levels", f"the robustness curve {name!r}")
        accuracy = _numbers(data, "accuracy", f"the robustness curve {name!r}")
        if len(levels) != len(accuracy) or not levels:
            raise RecordError(f"the robustness curve {name!r} has {len(levels)} levels and {len(accuracy)} "
                              f"accuracies; they should be as many, and at least one")
        clean = field_of(data, "clean", float)
        if clean is not None and clean not in levels:
            raise RecordError(f"the robustness curve {name!r} has a clean level {clean} not among its levels")
        return cls(field_of(data, "corruption", str) or name, levels, accuracy, clean)


def overall_robustness(curves: Mapping[str, RobustnessCurve]) -> float:
    """The mean score of the curves (NaN for none)."""
    return float(np.mean([curve.score for curve in curves.values()])) if curves else float("nan")



@dataclass(frozen=True)
class Reliability:
    """A reliability diagram: for each non-empty equal-width confidence bin, the mean top-label confidence, the
    accuracy and the number of digits in it (scikit-learn's calibration_curve, plus the counts)."""

    confidence: tuple[float, ...]
    accuracy: tuple[float, ...]
    count: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"confidence": _rounded(self.confidence), "accuracy": _rounded(self.accuracy),
                "count": list(self.count)}

    @classmethod
    def from_dict(cls, data: Any, what: str) -> Reliability:
        data = as_mapping(data, what)
        confidence, accuracy = _numbers(data, "confidence", what), _numbers(data, "accuracy", what)
        count = _numbers(data, "count", what, int)
        if not len(confidence) == len(accuracy) == len(count):
            raise RecordError(f"{what} has confidence, accuracy and count of different lengths")
        return cls(confidence, accuracy, count)


@dataclass(frozen=True)
class Calibration:
    """How well the test confidences match the test accuracy, before and after temperature scaling (T fitted on
    the validation digits)."""

    temperature: float
    bins: int
    count: int  # test digits
    ece_before: float
    ece_after: float
    test_nll_before: float
    test_nll_after: float
    val_nll_before: float
    val_nll_after: float
    reliability_before: Reliability
    reliability_after: Reliability
    histogram_before: tuple[int, ...]
    histogram_after: tuple[int, ...]

    FLOATS = ("temperature", "ece_before", "ece_after", "test_nll_before", "test_nll_after", "val_nll_before",
              "val_nll_after")

    def to_dict(self) -> dict[str, Any]:
        return {**{name: round(float(getattr(self, name)), DECIMALS) for name in self.FLOATS},
                "bins": self.bins, "count": self.count,
                "reliability_before": self.reliability_before.to_dict(),
                "reliability_after": self.reliability_after.to_dict(),
                "histogram_before": list(self.histogram_before), "histogram_after": list(self.histogram_after)}

    @classmethod
    def from_dict(cls, data: Any) -> Calibration:
        what = "the calibration"
        data = as_mapping(data, what)
        return cls(**{name: float(field_of(data, name, float, required=True)) for name in cls.FLOATS},
                   bins=field_of(data, "bins", int, required=True), count=field_of(data, "count", int, required=True),
                   reliability_before=Reliability.from_dict(data.get("reliability_before"),
                                                            f"{what}'s 'reliability_before'"),
                   reliability_after=Reliability.from_dict(data.get("reliability_after"),
                                                           f"{what}'s 'reliability_after'"),
                   histogram_before=_numbers(data, "histogram_before", what, int),
                   histogram_after=_numbers(data, "histogram_after", what, int))


@dataclass(frozen=True)
class Selective:
    """Answering only the digits the model is surest of: accuracy at each coverage (the share of digits answered,
    most confident first), and the largest coverage that keeps the target accuracy.

    ``threshold``: accept a digit when its top-label confidence is ≥ this; it is the lowest such threshold whose
    accepted digits are at least ``target`` accurate, scanning thresholds at each distinct confidence from the
    lowest (coverage 1) up, so ``coverage_at_target`` is the largest reachable coverage. Both are None when no
    threshold reaches the target (even the most confident digits include a mistake). ``aurc``: the area under the
    risk–coverage curve, (1/N) Σ_k risk of the k most confident digits (lower is better; 0 for a perfect ranking
    of a perfect model)."""

    target: float
    coverage: tuple[float, ...]
    accuracy: tuple[float, ...]
    threshold: float | None
    coverage_at_target: float | None
    aurc: float

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "coverage": _rounded(self.coverage), "accuracy": _rounded(self.accuracy),
                "threshold": None if self.threshold is None else float(self.threshold),  # exact: it is a cut-off
                "coverage_at_target": None if self.coverage_at_target is None else round(self.coverage_at_target,
                                                                                          DECIMALS),
                "aurc": round(self.aurc, DECIMALS)}

    @classmethod
    def from_dict(cls, data: Any) -> Selective:
        what = "the selective prediction"
        data = as_mapping(data, what)
        target = float(field_of(data, "target", float, required=True))
        coverage, accuracy = _numbers(data, "coverage", what), _numbers(data, "accuracy", what)
        if len(coverage) != len(accuracy):
            raise RecordError(f"{what} has {len(coverage)} coverages and {len(accuracy)} accuracies")
        threshold, reached = field_of(data, "threshold", float), field_of(data, "coverage_at_target", float)
        return cls(target, coverage, accuracy,
                   None if threshold is None else float(threshold), None if reached is None else float(reached),
                   float(field_of(data, "aurc", float, required=True)))


@dataclass(frozen=True)
class Evidence:
    """The saved evidence of one checkpoint; each part is None when it was not computed (or the file predates it)."""

    model: str
    checkpoint: str
    robustness: dict[str, RobustnessCurve] | None = None
    calibration: Calibration | None = None
    selective: Selective | None = None
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = field(default=EVIDENCE_VERSION, compare=False)
    weights_id: str | None = None  # the checkpoint's weights_id: evidence of other weights is stale

    @property
    def overall_robustness(self) -> float | None:
        return overall_robustness(self.robustness) if self.robustness else None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format_version": EVIDENCE_VERSION, "model": self.model,
                                "checkpoint": self.checkpoint, "weights_id": self.weights_id,
                                "created": self.created, "versions": self.versions}
        if self.robustness is not None:
            data["robustness"] = {name: curve.to_dict() for name, curve in self.robustness.items()}
        if self.calibration is not None:
            data["calibration"] = self.calibration.to_dict()
        if self.selective is not None:
            data["selective"] = self.selective.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Evidence:
        data = as_mapping(data, "the evidence")
        version = check_version(field_of(data, "format_version", int), EVIDENCE_VERSION, "the evidence")
        robustness = field_of(data, "robustness", dict)
        calibration_data = field_of(data, "calibration", dict)
        selective_data = field_of(data, "selective", dict)
        return cls(
            model=field_of(data, "model", str, required=True),
            checkpoint=field_of(data, "checkpoint", str, required=True),
            robustness=None if robustness is None else {
                str(name): RobustnessCurve.from_dict(curve, str(name)) for name, curve in robustness.items()},
            calibration=None if calibration_data is None else Calibration.from_dict(calibration_data),
            selective=None if selective_data is None else Selective.from_dict(selective_data),
            created=field_of(data, "created", str) or "", versions=field_of(data, "versions", dict) or {},
            format_version=version, weights_id=field_of(data, "weights_id", str),
        )


def evidence_path(checkpoint_path: str | os.PathLike) -> Path:
    """Beside the checkpoint: ``cnn.pt`` → ``cnn.evidence.json``."""
    path = Path(checkpoint_path)
    return path.with_name(path.name.removesuffix(CHECKPOINT_SUFFIX) + EVIDENCE_SUFFIX)


def save_evidence(path: str | os.PathLike, evidence: Evidence) -> Path:
    """Write ``evidence`` to ``path`` atomically (compact JSON)."""
    return write_json(path, evidence.to_dict())


def load_evidence(path: str | os.PathLike) -> Evidence:
    """The evidence in ``path``; RecordError naming the file when it cannot be read or is not valid evidence."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordError(f"{path.name}: cannot read the evidence ({error})") from None
    try:
        return Evidence.from_dict(data)
    except RecordError as error:
        raise RecordError(f"{path.name}: {error}") from None


def merge(old: Evidence | None, new: Evidence) -> Evidence:
    """``new`` with each part it did not compute (None) taken from ``old``: recomputing only the calibration keeps
    the saved robustness curves. Nothing is kept from ``old`` when it is evidence of other weights (both carry a
    ``weights_id`` and they differ): the checkpoint was retrained since."""
    if old is None or old.weights_id is not None and new.weights_id is not None and old.weights_id != new.weights_id:
        return new
    return Evidence(new.model, new.checkpoint,
                    new.robustness if new.robustness is not None else old.robustness,
                    new.calibration if new.calibration is not None else old.calibration,
                    new.selective if new.selective is not None else old.selective,
                    new.created, new.versions, weights_id=new.weights_id or old.weights_id)


def _rounded(values: Iterable[float]) -> list[float]:
    return [round(float(value), DECIMALS) for value in values]


def _numbers(data: Mapping[str, Any], name: str, what: str, kind: type = float) -> tuple:
    """A required list of numbers (ints when ``kind`` is int), as a tuple; RecordError naming ``what`` otherwise."""
    values = field_of(data, name, list, required=True) if name in data else None
    if values is None:
        raise RecordError(f"{what} has no field {name!r}")
    accepted = (int,) if kind is int else (int, float)
    if not all(isinstance(value, accepted) and not isinstance(value, bool) for value in values):
        raise RecordError(f"{what}'s field {name!r} should be a list of {'whole ' if kind is int else ''}numbers")
    return tuple(kind(value) for value in values)
