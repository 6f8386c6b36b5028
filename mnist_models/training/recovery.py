"""What an interrupted training leaves behind, found and dealt with: complete it, resume it, or delete it.

A training killed outright (kill -9, a power cut) cannot clean up after itself. What can remain is listed by
``find_incomplete`` (the Train page and ``digit-lab info`` show it; the page's buttons and ``digit-lab recover`` act
on it):

- a partial file (``<checkpoint>.partial``): the finished epochs of a training. *complete* evaluates those weights
  and saves them as a cancelled run (as the training's own result when every epoch had finished); *resume* trains
  the remaining epochs; *delete* removes it.
- a run's checkpoint without its evaluation (a save by an older version cut short, a copied file): *complete*
  evaluates it; *delete* removes it.
- a staged pair, complete but not renamed into place (a crash between two renames): *complete* renames it; *delete*
  removes it.
- a staged checkpoint without its staged evaluation (``.staged-<name>.pt``: a crash while a finished training was
  being evaluated): only *delete*; the training's partial file, listed beside it, still holds its epochs, and
  completing that saves the pair anew.

Acting needs the machine-wide training lock, as every writer does: a running training's own partial file looks
exactly like an interrupted one's. Listing never changes a file; completing or deleting also removes the temporary
files that a write cut short left beside the item's files (``.run007-cnn.pt.partial.<random>.tmp``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import torch

from ..evaluation import reevaluate
from ..models.registry import MODEL_NAMES, get_spec
from ..paths import resolve_checkpoint_dir, resolve_runs_dir
from ..store.checkpoints import (
    CHECKPOINT_SUFFIX,
    EVALUATION_SUFFIX,
    PARTIAL_SUFFIX,
    STAGED_PREFIX,
    CheckpointError,
    checkpoint_of_partial,
    evaluation_path,
    finish_pending,
    load_checkpoint,
    load_evaluation,
    read_partial,
    staged_path,
)
from ..store.files import remove_leftover_temporaries
from ..store.runs import list_unevaluated_runs, parse_run, run_title
from .pipeline import SavedModel, complete_training

Split = tuple[torch.Tensor, torch.Tensor]


class IncompleteKind(StrEnum):
    PARTIAL = "partial"  # a training's progress file
    UNEVALUATED = "unevaluated"  # a run's checkpoint without its evaluation
    UNRENAMED = "unrenamed"  # a complete staged pair not yet renamed into place
    UNFINISHED_SAVE = "unfinished save"  # a staged checkpoint whose evaluation was never written


@dataclass(frozen=True)
class IncompleteTraining:
    """One thing an interrupted training left, with what can be done about it."""

    name: str  # the checkpoint's name without .pt: 'run007-cnn', or 'cnn' for the command line's checkpoints/cnn.pt
    kind: IncompleteKind
    path: Path  # the file found: the partial file, the run's checkpoint, or the staged evaluation
    checkpoint: Path  # where its checkpoint belongs
    model: str | None  # None when the file cannot be read and its name does not say
    modified: float  # the file's modification time, seconds since the epoch
    epochs_completed: int | None = None
    epochs: int | None = None
    error: str | None = None  # why the file cannot be used: it can only be deleted
    dataset: str = "mnist"  # what it was trained on, so completing it evaluates on that dataset's test split

    @property
    def actions(self) -> tuple[str, ...]:
        if self.error is not None:
            return ("delete",)
        if self.kind is IncompleteKind.UNFINISHED_SAVE:
            return ("delete",)
        return ("complete", "resume", "delete") if self.kind is IncompleteKind.PARTIAL else ("complete", "delete")

    @property
    def title(self) -> str:
        run = parse_run(self.checkpoint)
        if run is not None:
            return run_title(run.model, run.number)
        return f"{get_spec(self.model).title} ({self.checkpoint.name})" if self.model in MODEL_NAMES else self.name

    def describe(self) -> str:
        """One sentence: what it is and where."""
        if self.error is not None:
            return f"{self.title}: cannot be used ({self.error}); {self.path}"
        if self.kind is IncompleteKind.PARTIAL:
            return (f"{self.title}: interrupted after {self.epochs_completed} of {self.epochs} epoch(s), kept in "
                    f"{self.path}")
        if self.kind is IncompleteKind.UNEVALUATED:
            return f"{self.title}: saved without its evaluation, {self.path}"
        if self.kind is IncompleteKind.UNFINISHED_SAVE:
            return (f"{self.title}: a save cut short while it was being evaluated (its progress file, when listed, "
                    f"still holds the epochs), {self.path}")
        return f"{self.title}: saved, but not yet renamed into place, {self.path}"


def _model_in(name: str) -> str | None:
    run = parse_run(Path(name + CHECKPOINT_SUFFIX))
    if run is not None:
        return run.model
    return name if name in MODEL_NAMES else None


def _partial(path: Path) -> IncompleteTraining:
    checkpoint = checkpoint_of_partial(path)
    name = checkpoint.name.removesuffix(CHECKPOINT_SUFFIX)
    modified = path.stat().st_mtime
    try:
        meta = read_partial(path, mmap=True).meta
    except CheckpointError as error:
        return IncompleteTraining(name, IncompleteKind.PARTIAL, path, checkpoint, _model_in(name), modified,
                                  error=str(error))
    return IncompleteTraining(name, IncompleteKind.PARTIAL, path, checkpoint, meta.model, modified,
                              meta.epochs_completed, meta.training.get("epochs"), dataset=meta.dataset_name)


def _unrenamed(staged_evaluation: Path) -> IncompleteTraining:
    name = staged_evaluation.name.removeprefix(STAGED_PREFIX).removesuffix(EVALUATION_SUFFIX)
    checkpoint = staged_evaluation.with_name(name + CHECKPOINT_SUFFIX)
    return IncompleteTraining(name, IncompleteKind.UNRENAMED, staged_evaluation, checkpoint, _model_in(name),
                              staged_evaluation.stat().st_mtime)


def _unfinished_save(staged_checkpoint: Path) -> IncompleteTraining:
    """Named after the hidden file itself, so that it never shares a name with the partial file of its training."""
    checkpoint = staged_checkpoint.with_name(staged_checkpoint.name.removeprefix(STAGED_PREFIX))
    return IncompleteTraining(staged_checkpoint.name.removesuffix(CHECKPOINT_SUFFIX), IncompleteKind.UNFINISHED_SAVE,
                              staged_checkpoint, checkpoint, _model_in(checkpoint.name.removesuffix(CHECKPOINT_SUFFIX)),
                              staged_checkpoint.stat().st_mtime)


def find_incomplete(runs_dir: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike | None = None
                    ) -> list[IncompleteTraining]:
    """Everything interrupted trainings left in the runs and checkpoint folders, oldest first. A training running
    now has a partial file too: check the training lock before calling one of these abandoned."""
    runs = resolve_runs_dir(runs_dir)
    folders = dict.fromkeys(folder for folder in (runs, resolve_checkpoint_dir(checkpoint_dir)) if folder.is_dir())
    found: list[IncompleteTraining] = []
    for folder in folders:
        try:
            found += [_partial(path) for path in folder.glob(f"*{CHECKPOINT_SUFFIX}{PARTIAL_SUFFIX}")]
            found += [_unrenamed(path) for path in folder.glob(f"{STAGED_PREFIX}*{EVALUATION_SUFFIX}")]
            found += [_unfinished_save(path) for path in folder.glob(f"{STAGED_PREFIX}*{CHECKPOINT_SUFFIX}")
                      if not staged_path(evaluation_path(path.with_name(path.name.removeprefix(STAGED_PREFIX))))
                      .exists()]
        except FileNotFoundError:  # finished (and removed) between the listing and now
            continue
    unrenamed = {item.checkpoint for item in found if item.kind is IncompleteKind.UNRENAMED}
    for run in list_unevaluated_runs(runs):
        if run.checkpoint not in unrenamed:
            try:
                modified = run.checkpoint.stat().st_mtime
            except FileNotFoundError:
                continue
            found.append(IncompleteTraining(run.run_id, IncompleteKind.UNEVALUATED, run.checkpoint, run.checkpoint,
                                            run.model, modified))
    return sorted(found, key=lambda item: item.modified)


def find_by_name(name: str, runs_dir: str | os.PathLike | None = None,
                 checkpoint_dir: str | os.PathLike | None = None) -> IncompleteTraining:
    """The one incomplete training called ``name``, or a KeyError that says why not."""
    found = find_incomplete(runs_dir, checkpoint_dir)
    matches = [item for item in found if item.name == name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(item.name for item in found) or "none"
        raise KeyError(f"no interrupted training called {name!r} (there are: {known})")
    raise KeyError(f"{name!r} names {len(matches)} files: " + ", ".join(str(item.path) for item in matches))


def complete(item: IncompleteTraining, test_data: Split, runs_dir: str | os.PathLike | None = None) -> SavedModel:
    """Turn ``item`` into a saved, evaluated model without training (see the module's docstring). Callers hold the
    training lock."""
    if item.error is not None:
        raise CheckpointError(f"{item.name} cannot be completed: {item.error}")
    if item.kind is IncompleteKind.PARTIAL:
        saved = complete_training(item.path, test_data, runs_dir)
    elif item.kind is IncompleteKind.UNEVALUATED:
        network, meta = load_checkpoint(item.checkpoint)
        saved = SavedModel(item.checkpoint, meta, reevaluate(network, meta, test_data), parse_run(item.checkpoint))
    else:
        finish_pending(item.checkpoint)
        _, meta = load_checkpoint(item.checkpoint)
        saved = SavedModel(item.checkpoint, meta, load_evaluation(item.checkpoint, meta=meta),
                           parse_run(item.checkpoint))
    _remove_leftovers(item)
    return saved


def delete(item: IncompleteTraining) -> None:
    """Remove ``item``'s files (and a staged checkpoint its save left). Callers hold the training lock."""
    if item.kind in (IncompleteKind.PARTIAL, IncompleteKind.UNFINISHED_SAVE):
        item.path.unlink(missing_ok=True)
    elif item.kind is IncompleteKind.UNEVALUATED:
        item.checkpoint.unlink(missing_ok=True)
    else:
        staged_path(evaluation_path(item.checkpoint)).unlink(missing_ok=True)  # first: it marks a complete pair
    staged_path(item.checkpoint).unlink(missing_ok=True)
    _remove_leftovers(item)


def _remove_leftovers(item: IncompleteTraining) -> None:
    """The half-written temporary files a power cut left beside ``item``'s files: no one writes them now (the caller
    holds the training lock), and a folder listing them would look damaged."""
    evaluation = evaluation_path(item.checkpoint)
    for path in (item.path, item.checkpoint, evaluation, staged_path(item.checkpoint), staged_path(evaluation)):
        remove_leftover_temporaries(path)
