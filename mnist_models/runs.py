"""Saved training runs: the Train page's results, kept under ``runs/`` (git-ignored) in ``checkpoints/``' format.

A run is ``run<NNN>-<model>.pt`` plus ``run<NNN>-<model>.metrics.json``. The checkpoint is written first and the
metrics last, each atomically, so a run is listed only once both exist: a crash mid-save leaves nothing half-listed.
Anything that reads checkpoints (``load_checkpoint``, ``load_metrics``, the catalog) reads a run by its path.
Numbers only go up (``.last-run`` remembers the highest), so a name never means two different runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoints import CHECKPOINT_SUFFIX, atomic_write_bytes, metrics_path, save_checkpoint, training_metadata
from .evaluation import evaluate_checkpoint
from .paths import resolve_runs_dir
from .registry import MODEL_NAMES, get_spec
from .training import TrainResult

RUN_ID = re.compile(r"^run(?P<number>\d{3,})-(?P<model>[a-z0-9_]+)$")
LAST_RUN_FILE = ".last-run"


@dataclass(frozen=True)
class SavedRun:
    run_id: str
    number: int
    model: str  # the registry name of its architecture
    checkpoint: Path

    @property
    def title(self) -> str:
        return run_title(self.model, self.number)

    @property
    def metrics(self) -> Path:
        return metrics_path(self.checkpoint)


def run_title(model: str, number: int) -> str:
    """How pages name a run next to the shipped models, e.g. 'CNN · run 7'."""
    return f"{get_spec(model).title} · run {number}"


def _parse(checkpoint: Path) -> SavedRun | None:
    match = RUN_ID.match(checkpoint.name.removesuffix(CHECKPOINT_SUFFIX))
    if match is None or match["model"] not in MODEL_NAMES:
        return None
    return SavedRun(match.string, int(match["number"]), match["model"], checkpoint)


def _all_checkpoints(directory: Path) -> list[SavedRun]:
    runs = (_parse(path) for path in directory.glob(f"run*{CHECKPOINT_SUFFIX}")) if directory.is_dir() else ()
    return sorted((run for run in runs if run is not None), key=lambda run: run.number)


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[SavedRun]:
    """Complete runs (checkpoint and metrics both written), oldest first."""
    return [run for run in _all_checkpoints(resolve_runs_dir(runs_dir)) if run.metrics.is_file()]


def find_run(run_id: str, runs_dir: str | os.PathLike | None = None) -> SavedRun:
    """The complete run called ``run_id``, or a KeyError naming it."""
    for run in list_runs(runs_dir):
        if run.run_id == run_id:
            return run
    raise KeyError(f"no saved run called {run_id!r}")


def _next_run(model: str, directory: Path) -> SavedRun:
    """A fresh number, above every run present or ever saved here (deleted ones included), and remember it."""
    counter = directory / LAST_RUN_FILE
    try:
        last = int(counter.read_text())
    except (FileNotFoundError, ValueError):
        last = 0
    number = max([last, *(run.number for run in _all_checkpoints(directory))]) + 1
    atomic_write_bytes(counter, lambda file: file.write(str(number).encode()))
    run_id = f"run{number:03d}-{model}"
    return SavedRun(run_id, number, model, directory / f"{run_id}{CHECKPOINT_SUFFIX}")


def save_run(result: TrainResult, test_data: tuple[torch.Tensor, torch.Tensor],
             runs_dir: str | os.PathLike | None = None) -> tuple[SavedRun, dict[str, Any]]:
    """Save a finished (or cancelled) training result as a new run and evaluate it on the test set.

    Returns the run and its evaluation record (what ``load_metrics`` reads back).
    """
    run = _next_run(result.config.model, resolve_runs_dir(runs_dir))
    meta = training_metadata(result, extra={"run": {"id": run.run_id, "title": run.title}})
    save_checkpoint(run.checkpoint, result.model, meta)
    try:
        evaluation = evaluate_checkpoint(result.model, meta, run.checkpoint, test_data)
    except BaseException:
        run.checkpoint.unlink(missing_ok=True)  # never leave a checkpoint that no listing shows and no one can delete
        raise
    return run, evaluation


def delete_run(run_id: str, runs_dir: str | os.PathLike | None = None) -> None:
    """Remove a run: its metrics first, so it stops being listed before its checkpoint goes."""
    run = find_run(run_id, runs_dir)
    run.metrics.unlink(missing_ok=True)
    run.checkpoint.unlink(missing_ok=True)
