"""The models the dashboard can show: every shipped checkpoint and every saved training run, each either loaded or
marked unavailable with why.

A broken or missing file never takes the others down: it becomes an entry with an ``error``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from .checkpoints import CheckpointError, checkpoint_path, load_checkpoint, load_metrics
from .inference import predict_proba
from .paths import resolve_checkpoint_dir, resolve_runs_dir
from .registry import MODEL_NAMES, get_spec
from .runs import list_runs


@dataclass
class CatalogEntry:
    name: str  # a registry name for shipped models, a run id for saved runs
    title: str
    checkpoint: Path
    is_run: bool = False
    model: nn.Module | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] | None = None  # the saved evaluation JSON, when present
    error: str | None = None

    @property
    def available(self) -> bool:
        return self.model is not None


def catalog_signature(checkpoint_dir: str | os.PathLike | None = None,
                      runs_dir: str | os.PathLike | None = None) -> tuple:
    """Names, sizes and times of the checkpoint and run files: a cache key that changes when any file does."""
    signature = []
    for directory in (resolve_checkpoint_dir(checkpoint_dir), resolve_runs_dir(runs_dir)):
        signature.append(str(directory))
        for path in sorted(directory.glob("*.pt")) + sorted(directory.glob("*.json")) if directory.is_dir() else []:
            try:
                stat = path.stat()
            except FileNotFoundError:  # deleted between the listing and now (another session deleting a run)
                continue
            signature.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


def _load_entry(entry: CatalogEntry, source: str | os.PathLike, checkpoint_dir: str | os.PathLike | None
                ) -> CatalogEntry:
    try:
        entry.model, entry.meta = load_checkpoint(source, checkpoint_dir)
    except CheckpointError as error:
        entry.error = str(error)
    try:
        entry.results = load_metrics(source, checkpoint_dir)
    except CheckpointError:
        entry.results = None
    return entry


def load_catalog(checkpoint_dir: str | os.PathLike | None = None,
                 runs_dir: str | os.PathLike | None = None) -> list[CatalogEntry]:
    """One entry per registered model, in registry order, then one per saved run, oldest first."""
    shipped = [_load_entry(CatalogEntry(name, get_spec(name).title, checkpoint_path(name, checkpoint_dir)),
                           name, checkpoint_dir) for name in MODEL_NAMES]
    runs = [_load_entry(CatalogEntry(run.run_id, run.title, run.checkpoint, is_run=True),
                        run.checkpoint, None) for run in list_runs(runs_dir)]
    for entry in runs:
        if entry.meta.get("cancelled"):
            entry.title += " (cancelled)"
    return shipped + runs


@dataclass(frozen=True)
class Prediction:
    name: str
    title: str
    probabilities: np.ndarray  # (10,)
    latency_ms: float

    @property
    def digit(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max())


def predict_with_each(entries: list[CatalogEntry], image: np.ndarray) -> list[Prediction]:
    """Every available model's probabilities for one 28×28 image, each with its own inference time."""
    predictions = []
    for entry in entries:
        if not entry.available:
            continue
        start = time.perf_counter()
        probabilities = predict_proba(entry.model, image)[0]
        predictions.append(Prediction(entry.name, entry.title, probabilities, (time.perf_counter() - start) * 1000))
    return predictions


def agreement(predictions: list[Prediction]) -> str:
    """One sentence on whether the models agree, naming the dissenters."""
    if not predictions:
        return "No model is available."
    votes: dict[int, list[str]] = {}
    for prediction in predictions:
        votes.setdefault(prediction.digit, []).append(prediction.title)
    if len(votes) == 1:
        digit = next(iter(votes))
        return f"All {len(predictions)} models agree: it is a {digit}."
    ranked = sorted(votes.items(), key=lambda item: -len(item[1]))
    parts = [f"{', '.join(titles)} → {digit}" for digit, titles in ranked]
    return f"The models disagree: {'; '.join(parts)}."
