"""Saved training runs: the Train page's results, kept under ``runs/`` (git-ignored) in ``checkpoints/``' format.

A run is ``run<NNN>-<model>.pt`` plus ``run<NNN>-<model>.metrics.json``, written as a pair by the training pipeline
(``write_pair``): a run is listed only once both exist, so a crash mid-save leaves nothing half-listed. While it
trains, a run is ``run<NNN>-<model>.pt.partial`` (see ``checkpoints``); what a crash leaves is found by
``training.recovery``. Anything that
reads checkpoints (``load_checkpoint``, ``load_evaluation``, the catalog) reads a run by its path. Numbers only go up
(``.last-run`` remembers the highest), so a name never means two different runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..models.registry import MODEL_NAMES, get_spec
from ..paths import resolve_runs_dir
from .checkpoints import CHECKPOINT_SUFFIX, PARTIAL_SUFFIX, evaluation_path
from .files import atomic_write

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
    def evaluation(self) -> Path:
        return evaluation_path(self.checkpoint)


def run_title(model: str, number: int) -> str:
    """How pages name a run next to the shipped models, e.g. 'CNN · run 7'."""
    return f"{get_spec(model).title} · run {number}"


def parse_run(checkpoint: Path) -> SavedRun | None:
    """The run whose checkpoint is (or will be) ``checkpoint``; None for a file that is not a run's."""
    match = RUN_ID.match(checkpoint.name.removesuffix(CHECKPOINT_SUFFIX))
    if match is None or match["model"] not in MODEL_NAMES:
        return None
    return SavedRun(match.string, int(match["number"]), match["model"], checkpoint)


def _all_checkpoints(directory: Path, suffix: str = CHECKPOINT_SUFFIX) -> list[SavedRun]:
    """Runs with a file ``run*<suffix>`` in ``directory``, by number."""
    paths = directory.glob(f"run*{suffix}") if directory.is_dir() else ()
    runs = (parse_run(path.with_name(path.name.removesuffix(suffix) + CHECKPOINT_SUFFIX)) for path in paths)
    return sorted((run for run in runs if run is not None), key=lambda run: run.number)


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[SavedRun]:
    """Complete runs (checkpoint and evaluation both written), oldest first."""
    return [run for run in _all_checkpoints(resolve_runs_dir(runs_dir)) if run.evaluation.is_file()]


def list_unevaluated_runs(runs_dir: str | os.PathLike | None = None) -> list[SavedRun]:
    """Runs whose checkpoint has no evaluation beside it (a save from an older version cut short, or a copied file)."""
    return [run for run in _all_checkpoints(resolve_runs_dir(runs_dir)) if not run.evaluation.is_file()]


def find_run(run_id: str, runs_dir: str | os.PathLike | None = None) -> SavedRun:
    """The complete run called ``run_id``, or a KeyError naming it."""
    for run in list_runs(runs_dir):
        if run.run_id == run_id:
            return run
    raise KeyError(f"no saved run called {run_id!r}")


def next_run(model: str, runs_dir: str | os.PathLike | None = None) -> SavedRun:
    """A fresh run for ``model``: its number is above every run present or ever saved here (deleted ones included),
    and is remembered at once, so even a run whose save fails never shares its name with a later one."""
    directory = resolve_runs_dir(runs_dir)
    counter = directory / LAST_RUN_FILE
    try:
        last = int(counter.read_text())
    except (FileNotFoundError, ValueError):
        last = 0
    taken = [*_all_checkpoints(directory), *_all_checkpoints(directory, CHECKPOINT_SUFFIX + PARTIAL_SUFFIX)]
    number = max([last, *(run.number for run in taken)]) + 1
    atomic_write(counter, lambda file: file.write(str(number).encode()))
    run_id = f"run{number:03d}-{model}"
    return SavedRun(run_id, number, model, directory / f"{run_id}{CHECKPOINT_SUFFIX}")


def delete_run(run_id: str, runs_dir: str | os.PathLike | None = None) -> None:
    """Remove a run: its evaluation first, so it stops being listed, then its checkpoint, then what else was saved
    beside it under its id (its evidence, its map)."""
    run = find_run(run_id, runs_dir)
    run.evaluation.unlink(missing_ok=True)
    run.checkpoint.unlink(missing_ok=True)
    for leftover in run.checkpoint.parent.glob(f"{run.run_id}.*"):
        leftover.unlink(missing_ok=True)
