"""The one way trained weights reach the disk: train → save → evaluate, whoever starts it (the command line, the
Train page's training process, the recovery of an interrupted training).

The files of one training, for a new run ``run007-cnn`` in the runs folder (for a named checkpoint such as the
command line's ``checkpoints/cnn.pt``, the same names beside it):

1. before training, the folder is checked for room (``check_room``): a read-only or full folder is refused before
   any work is done;
2. after each finished epoch, ``run007-cnn.pt.partial`` is replaced atomically: weights, optimizer, scheduler and
   random-generator states, history and settings. A killed training loses at most the epoch in progress and can be
   resumed or completed (``recovery``). A new run takes its number when its first epoch is saved;
3. when training ends, the pair ``run007-cnn.pt`` + ``run007-cnn.metrics.json`` (``write_pair``) replaces any
   previous pair only once both are complete, and the partial file goes.

A cancelled training (the Train page's button, SIGTERM, Ctrl-C) keeps its finished epochs as a cancelled run: its own
run, or for a named checkpoint a new run, so a cancelled training never replaces a named checkpoint.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import for_dataset
from ..evaluation import evaluate
from ..models.registry import get_spec
from ..paths import resolve_runs_dir
from ..store.checkpoints import (
    CheckpointError,
    PartialTraining,
    checkpoint_of_partial,
    clear_staged,
    finish_pending_in,
    partial_path,
    read_partial,
    save_partial,
    write_pair,
)
from ..store.files import check_room
from ..store.records import CheckpointMeta, Evaluation, RunInfo, library_versions, utc_now
from ..store.runs import SavedRun, next_run, parse_run
from . import distributed
from .config import SETTINGS_ADDED_LATER, TrainConfig
from .loop import CancelFlag, ProgressCallback, TrainingState, TrainResult, train

Split = tuple[torch.Tensor, torch.Tensor]
OPTIMIZER_STATE_SLOTS = {"adam": 2, "adamw": 2, "adadelta": 2, "rmsprop": 1, "sgd": 1}  # tensors kept per parameter
EVALUATION_BYTES = 2_000_000  # an evaluation with its per-image predictions is about 0.4 MB


@dataclass(frozen=True)
class SavedModel:
    """Where a trained network was saved, and what it scored."""

    checkpoint: Path
    meta: CheckpointMeta
    evaluation: Evaluation
    run: SavedRun | None = None  # set when it was saved as a run


@dataclass
class Destination:
    """Where one training's files go: a named checkpoint, or a run in ``runs_dir`` whose number is taken only when
    first needed, so a training that fails or is cancelled before its first epoch uses none."""

    model: str
    runs_dir: Path
    checkpoint: Path | None = None
    run: SavedRun | None = None

    @property
    def folder(self) -> Path:
        return self.checkpoint.parent if self.checkpoint is not None else self.runs_dir

    def resolve(self) -> Path:
        """The checkpoint path, taking the run's number now if it has none yet."""
        if self.checkpoint is None:
            finish_pending_in(self.runs_dir)  # what a crashed save of an earlier run left behind
            self.run = next_run(self.model, self.runs_dir)
            self.checkpoint = self.run.checkpoint
        return self.checkpoint


def storage_needed(config: TrainConfig) -> int:
    """Bytes a training of ``config`` has on disk at its peak: the partial file twice (each epoch's is written
    before the previous one goes), the checkpoint and the evaluation, plus a quarter for the containers."""
    network = get_spec(config.model).build(**config.architecture)
    weights = sum(tensor.numel() * tensor.element_size() for tensor in network.state_dict().values())
    partial = weights * (1 + OPTIMIZER_STATE_SLOTS[config.optimizer])
    return int((2 * partial + weights + EVALUATION_BYTES) * 1.25)


def _metadata(config: TrainConfig, *, history: dict[str, list[float]], cancelled: bool | None, initialisation: str,
              parameters: int, train_checksum: str, device: str, train_time_s: float, run: SavedRun | None
              ) -> CheckpointMeta:
    spec = get_spec(config.model)
    settings = config.to_dict()
    return CheckpointMeta(
        model=spec.name, weights_id=uuid.uuid4().hex, title=spec.title,
        architecture={**spec.architecture_defaults, **settings.pop("architecture")},
        training=settings, epochs_completed=len(history["epoch"]), cancelled=cancelled, history=history,
        initialisation=initialisation, parameters=parameters,
        dataset={"name": config.dataset, "train_sha256": train_checksum}, device=device,
        train_time_s=round(train_time_s, 3), created=utc_now(), versions=library_versions(),
        run=RunInfo(run.run_id, run.title) if run is not None else None,
    )


def training_metadata(result: TrainResult, run: SavedRun | None = None) -> CheckpointMeta:
    """The metadata of a finished (or cancelled) TrainResult: what was trained, how, on what, with which libraries."""
    return _metadata(result.config, history=result.history, cancelled=result.cancelled,
                     initialisation=result.initialisation,
                     parameters=sum(parameter.numel() for parameter in result.network.parameters()),
                     train_checksum=result.train_checksum, device=result.device, train_time_s=result.train_time_s,
                     run=run)


def config_of(meta: CheckpointMeta) -> TrainConfig:
    """The TrainConfig recorded in a checkpoint's or partial file's metadata, or a CheckpointError."""
    try:
        return TrainConfig(**{**SETTINGS_ADDED_LATER, **meta.training, "architecture": meta.architecture})
    except (TypeError, ValueError) as error:
        name = meta.path.name if meta.path is not None else "the file"
        raise CheckpointError(f"{name} records training settings this version cannot use: {error}") from None


def _save_progress(destination: Destination, config: TrainConfig, state: TrainingState) -> None:
    """Write the partial file after a finished epoch."""
    checkpoint = destination.resolve()
    meta = _metadata(config, history=state.history, cancelled=None, initialisation=state.initialisation,
                     parameters=sum(value.numel() for value in state.weights.values()),
                     train_checksum=state.train_checksum, device=state.device, train_time_s=state.train_time_s,
                     run=destination.run)
    resume: dict[str, Any] = {"optimizer": state.optimizer, "scheduler": state.scheduler,
                              "generator": state.generator, "rng": state.rng}
    save_partial(partial_path(checkpoint), state.weights, meta, resume)


def _save(result: TrainResult, test_data: Split, destination: Destination,
          supersedes: Path | None = None) -> SavedModel:
    path = destination.resolve()
    meta = training_metadata(result, destination.run)
    evaluation = write_pair(path, result.network, meta,
                            lambda staged: evaluate(result.network, meta, test_data, staged), supersedes)
    meta.path = path
    return SavedModel(path, meta, evaluation, destination.run)


def _save_result(result: TrainResult, test_data: Split, destination: Destination) -> SavedModel:
    """Save a finished training at its destination; a cancelled one as a run (a new one for a named checkpoint).
    Either way the training's partial file goes once the pair is complete."""
    checkpoint = destination.resolve()
    partial = partial_path(checkpoint)
    if result.cancelled and destination.run is None:
        saved = _save(result, test_data, Destination(result.config.model, destination.runs_dir), partial)
        clear_staged(checkpoint)
        return saved
    return _save(result, test_data, destination, partial)


def save_trained(result: TrainResult, test_data: Split, checkpoint: str | os.PathLike | None = None,
                 runs_dir: str | os.PathLike | None = None) -> SavedModel:
    """Save ``result`` at ``checkpoint`` (replacing the pair there), or as a new run in ``runs_dir`` when no
    checkpoint is named, and evaluate it on ``test_data``."""
    destination = Destination(result.config.model, resolve_runs_dir(runs_dir),
                              Path(checkpoint) if checkpoint is not None else None)
    return _save(result, test_data, destination)


def _train_to(destination: Destination, config: TrainConfig, train_data: Split, test_data: Split,
              resume: TrainingState | None, progress: ProgressCallback | None, cancel: CancelFlag | None,
              on_trained: Callable[[TrainResult], None] | None) -> tuple[TrainResult, SavedModel | None]:
    check_room(destination.folder, storage_needed(config), f"training {get_spec(config.model).title}")
    saves = distributed.current().is_main  # under torchrun, rank 0 writes the files
    result = train(config, progress=progress, cancel=cancel, data=train_data, resume=resume,
                   on_epoch=(lambda state: _save_progress(destination, config, state)) if saves else None)
    if result.epochs_completed == 0 or not saves:
        return result, None
    if on_trained is not None:
        on_trained(result)
    return result, _save_result(result, test_data, destination)


def train_and_save(config: TrainConfig, train_data: Split, test_data: Split, *,
                   checkpoint: str | os.PathLike | None = None, runs_dir: str | os.PathLike | None = None,
                   progress: ProgressCallback | None = None, cancel: CancelFlag | None = None,
                   on_trained: Callable[[TrainResult], None] | None = None,
                   ) -> tuple[TrainResult, SavedModel | None]:
    """Train, saving progress after every epoch, then save and evaluate at ``checkpoint`` or as a new run in
    ``runs_dir`` (see the module's docstring). A training cancelled before its first epoch finished writes nothing
    and its SavedModel is None, as on every rank but rank 0 under torchrun. ``on_trained`` is told when training
    ends and saving begins. A folder that cannot take the files is a StorageError before training starts."""
    destination = Destination(config.model, resolve_runs_dir(runs_dir),
                              Path(checkpoint) if checkpoint is not None else None)
    return _train_to(destination, config, train_data, test_data, None, progress, cancel, on_trained)


@dataclass(frozen=True)
class InterruptedTraining:
    """A partial file read back: the training's settings, where it was going, and its state after the last epoch."""

    config: TrainConfig
    destination: Destination
    state: TrainingState


def read_interrupted(partial: str | os.PathLike, runs_dir: str | os.PathLike | None = None) -> InterruptedTraining:
    """What the partial file at ``partial`` holds, or a CheckpointError that says why it cannot be used."""
    partial = Path(partial)
    content: PartialTraining = read_partial(partial)
    meta = content.meta
    config = config_of(meta)
    checkpoint = checkpoint_of_partial(partial)
    run = parse_run(checkpoint) if meta.run is not None else None
    destination = Destination(config.model, resolve_runs_dir(runs_dir), checkpoint, run)
    resume = content.resume
    state = TrainingState(content.weights, resume["optimizer"], resume["scheduler"], resume["generator"],
                          resume["rng"], meta.history, meta.train_time_s or 0.0, meta.initialisation or "unknown",
                          meta.dataset.get("train_sha256", ""), meta.device or "cpu")
    return InterruptedTraining(config, destination, state)


def resume_training(partial: str | os.PathLike, train_data: Split, test_data: Split, *,
                    runs_dir: str | os.PathLike | None = None, progress: ProgressCallback | None = None,
                    cancel: CancelFlag | None = None, on_trained: Callable[[TrainResult], None] | None = None,
                    ) -> tuple[TrainResult, SavedModel | None]:
    """Train the epochs an interrupted training had left, from its partial file, then save as it would have."""
    interrupted = read_interrupted(partial, runs_dir)
    return _train_to(interrupted.destination, interrupted.config, train_data, test_data, interrupted.state, progress,
                     cancel, on_trained)


def complete_training(partial: str | os.PathLike, test_data: Split, runs_dir: str | os.PathLike | None = None,
                      ) -> SavedModel:
    """Save what an interrupted training had finished, without training: evaluated, as a cancelled run (or, when
    every epoch had finished, as the training's own result)."""
    interrupted = read_interrupted(partial, runs_dir)
    config, state = interrupted.config, interrupted.state
    network = for_dataset(get_spec(config.model).build(**config.architecture), config.dataset)
    network.load_state_dict(state.weights)
    result = TrainResult(network.eval(), config, state.history, state.epochs_completed < config.epochs,
                         state.train_time_s, state.device, state.initialisation, state.train_checksum)
    return _save_result(result, test_data, interrupted.destination)
