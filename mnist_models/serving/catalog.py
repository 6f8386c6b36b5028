"""The models the dashboard can show: every shipped checkpoint and every saved training run, each either loaded or
marked unavailable with why.

A broken or missing file never takes the others down: it becomes an entry with an ``error``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from ..data import DATASETS, get_dataset
from ..inference import predict_logits, probabilities_from_logits
from ..models.registry import MODEL_NAMES, get_spec
from ..novelty import scores_for
from ..paths import resolve_checkpoint_dir, resolve_runs_dir
from ..store.checkpoints import (
    CheckpointError,
    checkpoint_path,
    evaluation_path,
    load_checkpoint,
    load_evaluation,
    shipped_name,
)
from ..store.evidence_records import Evidence, evidence_path, load_evidence
from ..store.records import CheckpointMeta, Evaluation, RecordError
from ..store.runs import list_runs


@dataclass
class CatalogEntry:
    name: str  # the shipped checkpoint's name (``shipped_name``: 'cnn', 'fashion-cnn'), a run id for saved runs
    title: str
    checkpoint: Path
    is_run: bool = False
    dataset: str = "mnist"  # what it was trained on (its metadata's, once read): only same-dataset models compare
    network: nn.Module | None = None
    meta: CheckpointMeta | None = None
    evaluation: Evaluation | None = None  # the saved evaluation, when present and readable
    error: str | None = None  # why the network could not be loaded
    evaluation_error: str | None = None  # why an evaluation file that exists cannot be shown
    evidence: Evidence | None = None  # robustness, calibration, selective prediction, when computed and readable
    evidence_error: str | None = None  # why an evidence file that exists cannot be shown

    @property
    def available(self) -> bool:
        return self.network is not None

    @property
    def temperature(self) -> float | None:
        """The temperature fitted on the validation digits (the evidence's calibration), None when not computed."""
        calibration = self.evidence.calibration if self.evidence is not None else None
        return calibration.temperature if calibration is not None else None

    def probabilities(self, logits: np.ndarray, calibrated: bool = False) -> np.ndarray:
        """Softmax of ``logits`` from this model; ``calibrated``: divided first by its fitted temperature, when it has
        one (the answer stays the same, only how sure it says it is changes)."""
        temperature = self.temperature if calibrated else None
        return probabilities_from_logits(logits if temperature is None else logits / temperature)


def catalog_signature(checkpoint_dir: str | os.PathLike | None = None,
                      runs_dir: str | os.PathLike | None = None) -> tuple:
    """Names, sizes and times of the checkpoint and run files (weights, evaluations, evidence, maps): a cache key that
    changes when any file does."""
    signature = []
    for directory in (resolve_checkpoint_dir(checkpoint_dir), resolve_runs_dir(runs_dir)):
        signature.append(str(directory))
        for path in sorted(path for pattern in ("*.pt", "*.json", "*.pkl") for path in directory.glob(pattern)
                           ) if directory.is_dir() else []:
            try:
                stat = path.stat()
            except FileNotFoundError:  # deleted between the listing and now (another session deleting a run)
                continue
            signature.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


def _load_entry(entry: CatalogEntry, source: str | os.PathLike, checkpoint_dir: str | os.PathLike | None
                ) -> CatalogEntry:
    try:
        entry.network, entry.meta = load_checkpoint(source, checkpoint_dir)
    except CheckpointError as error:
        entry.error = str(error)
    else:
        entry.dataset = entry.meta.dataset_name
    try:
        entry.evaluation = load_evaluation(source, checkpoint_dir, entry.meta)
    except CheckpointError as error:
        if evaluation_path(entry.checkpoint).exists():  # a missing one only means "not evaluated yet"
            entry.evaluation_error = str(error)
    if evidence_path(entry.checkpoint).exists():  # a missing one only means "not computed yet"
        try:
            evidence = load_evidence(evidence_path(entry.checkpoint))
        except RecordError as error:
            entry.evidence_error = str(error)
        else:
            weights = entry.meta.weights_id if entry.meta is not None else None
            if None not in (weights, evidence.weights_id) and weights != evidence.weights_id:
                entry.evidence_error = ("it was computed for earlier weights (retrained since); `digit-lab evaluate` "
                                        "computes it for these")
            else:
                entry.evidence = evidence
    return entry


def load_catalog(checkpoint_dir: str | os.PathLike | None = None,
                 runs_dir: str | os.PathLike | None = None) -> list[CatalogEntry]:
    """One entry per registered model, in registry order (MNIST's; another dataset's where its checkpoint is
    shipped), then one per saved run, oldest first. Models of a dataset other than MNIST say so in their title."""
    shipped = []
    for dataset in DATASETS:
        for model in MODEL_NAMES:
            name = shipped_name(model, dataset)
            path = checkpoint_path(name, checkpoint_dir)
            if dataset == "mnist" or path.is_file():
                shipped.append(_load_entry(CatalogEntry(name, get_spec(model).title, path, dataset=dataset), name,
                                           checkpoint_dir))
    runs = [_load_entry(CatalogEntry(run.run_id, run.title, run.checkpoint, is_run=True),
                        run.checkpoint, None) for run in list_runs(runs_dir)]
    for entry in runs:
        if entry.meta is not None and entry.meta.cancelled:
            entry.title += " (cancelled)"
    for entry in shipped + runs:
        if entry.dataset != "mnist":
            entry.title += f" · {get_dataset(entry.dataset).title}"
    return shipped + runs


def of_dataset(entries: list[CatalogEntry], dataset: str) -> list[CatalogEntry]:
    """The entries of models trained on ``dataset``: the ones that can be compared with each other."""
    return [entry for entry in entries if entry.dataset == dataset]


@dataclass(frozen=True)
class Prediction:
    name: str
    title: str
    probabilities: np.ndarray  # (10,)
    latency_ms: float
    # The model's out-of-distribution score (mnist_models.novelty) and whether it is above the threshold calibrated
    # in the model's evaluation: both None when the evaluation has no threshold (older files, or none at all).
    novelty_score: float | None = None
    novel: bool | None = None

    @property
    def digit(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max())


def predict_with_each(entries: list[CatalogEntry], image: np.ndarray, calibrated: bool = False) -> list[Prediction]:
    """Every available model's probabilities for one 28×28 image, each with its own inference time, and its novelty
    score and verdict against the threshold in its evaluation (both from the same forward pass). ``calibrated``:
    probabilities from the logits divided by the temperature fitted for the model (its evidence), for the models
    that have one; the answer is the same, only how sure it says it is changes."""
    predictions = []
    for entry in entries:
        if entry.network is None:  # unavailable: its checkpoint could not be loaded
            continue
        start = time.perf_counter()
        logits = predict_logits(entry.network, image)[0]
        probabilities = entry.probabilities(logits, calibrated)
        threshold = entry.evaluation.novelty if entry.evaluation is not None else None
        score = novel = None
        if threshold is not None:
            score = float(scores_for(logits, threshold)[0])
            novel = score > threshold.threshold
        predictions.append(Prediction(entry.name, entry.title, probabilities, (time.perf_counter() - start) * 1000,
                                      score, novel))
    return predictions
