"""The one way trained weights reach the disk: train → save → evaluate, whoever starts it (the command line or the
Train page's worker).

The new checkpoint and its evaluation replace the previous pair only once both are complete (``write_pair``), so an
interruption at any step (Ctrl-C, a failed evaluation, a full disk) leaves the previous pair as it was.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..evaluation import evaluate
from ..models.registry import get_spec
from ..paths import resolve_runs_dir
from ..store.checkpoints import finish_pending_in, write_pair
from ..store.records import CheckpointMeta, Evaluation, RunInfo, library_versions, utc_now
from ..store.runs import SavedRun, next_run
from .config import TrainConfig
from .loop import CancelFlag, ProgressCallback, TrainResult, train

Split = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class SavedModel:
    """Where a trained network was saved, and what it scored."""

    checkpoint: Path
    meta: CheckpointMeta
    evaluation: Evaluation
    run: SavedRun | None = None  # set when it was saved as a new run


def training_metadata(result: TrainResult, run: RunInfo | None = None) -> CheckpointMeta:
    """The metadata of a finished (or cancelled) TrainResult: what was trained, how, on what, with which libraries."""
    spec = get_spec(result.config.model)
    config = result.config.to_dict()
    return CheckpointMeta(
        model=spec.name, weights_id=uuid.uuid4().hex, title=spec.title,
        architecture={**spec.architecture_defaults, **config.pop("architecture")},
        training=config, epochs_completed=result.epochs_completed, cancelled=result.cancelled,
        history=result.history, initialisation=result.initialisation,
        parameters=sum(parameter.numel() for parameter in result.network.parameters()),
        dataset={"name": "MNIST", "train_sha256": result.train_checksum}, device=result.device,
        train_time_s=round(result.train_time_s, 3), created=utc_now(), versions=library_versions(), run=run,
    )


def save_trained(result: TrainResult, test_data: Split, checkpoint: str | os.PathLike | None = None,
                 runs_dir: str | os.PathLike | None = None) -> SavedModel:
    """Save ``result`` at ``checkpoint`` (replacing the pair there), or as a new run in ``runs_dir`` when no
    checkpoint is named, and evaluate it on ``test_data``."""
    run = None
    if checkpoint is None:
        finish_pending_in(resolve_runs_dir(runs_dir))  # what a crashed save of an earlier run left behind
        run = next_run(result.config.model, runs_dir)
    path = run.checkpoint if run is not None else Path(checkpoint)
    meta = training_metadata(result, RunInfo(run.run_id, run.title) if run is not None else None)
    evaluation = write_pair(path, result.network, meta,
                            lambda staged: evaluate(result.network, meta, test_data, staged))
    meta.path = path
    return SavedModel(path, meta, evaluation, run)


def train_and_save(config: TrainConfig, train_data: Split, test_data: Split, *,
                   checkpoint: str | os.PathLike | None = None, runs_dir: str | os.PathLike | None = None,
                   keep_cancelled: bool = False, progress: ProgressCallback | None = None,
                   cancel: CancelFlag | None = None, on_trained: Callable[[TrainResult], None] | None = None,
                   ) -> tuple[TrainResult, SavedModel | None]:
    """Train, then save and evaluate (see ``save_trained``). A cancelled run is saved only with ``keep_cancelled``
    and at least one finished epoch; otherwise nothing is written and the SavedModel is None. ``on_trained`` is
    told when training ends and saving begins."""
    result = train(config, progress=progress, cancel=cancel, data=train_data)
    if result.cancelled and (not keep_cancelled or result.epochs_completed == 0):
        return result, None
    if on_trained is not None:
        on_trained(result)
    return result, save_trained(result, test_data, checkpoint, runs_dir)
