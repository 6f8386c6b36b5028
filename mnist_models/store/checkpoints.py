"""Checkpoint files: weights plus typed metadata, and the evaluation saved beside them, replaced only as a pair.

A checkpoint is a ``torch.save``d dict of plain types and tensors, so ``torch.load(weights_only=True)`` reads it
without unpickling code; its ``CheckpointMeta`` travels as one JSON string inside it. Its ``Evaluation`` lives
beside it as ``<stem>.metrics.json``.

``write_pair`` is how trained weights are saved. It stages the new checkpoint and its evaluation under hidden names
(``.staged-<name>``) and renames them into place only once both are complete; the staged evaluation is written last,
so its presence marks a complete pair. An interruption before the renames removes what was staged and leaves the
previous pair exactly as it was. A crash between the two renames leaves new weights beside the old evaluation: the
evaluation names the weights it describes (``weights_id``), so readers see it as stale rather than as the new
weights' figures, and the next writer finishes the pair (``finish_pending``).

While a training runs, its progress lives beside the checkpoint it will become, as ``<name>.partial`` (e.g.
``run007-cnn.pt.partial``): the weights after the last finished epoch plus what resuming needs (optimizer, scheduler
and random-generator states), replaced atomically after every epoch. ``write_pair`` removes it (``supersedes``) once
the new pair is staged in full, so after a crash either the partial file or a complete staged pair remains.

Writers are serialised by the machine-wide training lock (the command line's train, evaluate and recover, the Train
page's worker); readers never move or delete files.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import torch
from torch import nn

from ..data import DATASETS, for_dataset
from ..errors import DigitLabError
from ..models.registry import MODEL_NAMES, get_spec
from ..paths import resolve_checkpoint_dir
from .files import atomic_write, write_json
from .records import CheckpointMeta, Evaluation, RecordError

CHECKPOINT_FORMAT = "digit-lab/checkpoint"
PARTIAL_FORMAT = "digit-lab/partial-training"
CONTAINER_VERSION = 1  # the .pt file's layout; the metadata record inside carries its own format_version
CHECKPOINT_SUFFIX = ".pt"
EVALUATION_SUFFIX = ".metrics.json"
PARTIAL_SUFFIX = ".partial"  # appended to the checkpoint's name; not *.pt, so the catalog does not reload per epoch
STAGED_PREFIX = ".staged-"
RESUME_TENSORS = ("generator", "rng")  # random-generator states, as uint8 tensors


class CheckpointError(DigitLabError, RuntimeError):
    """A checkpoint or evaluation that cannot be used: missing, corrupt, truncated, foreign, for another
    architecture, or with unusable metadata. The message says which, for one file."""


def save_checkpoint(path: str | os.PathLike, network: nn.Module, meta: CheckpointMeta | Mapping[str, Any]) -> Path:
    """Save ``network``'s weights with ``meta`` (a CheckpointMeta, or a dict of its fields naming at least a
    registered ``model``), atomically."""
    meta = meta if isinstance(meta, CheckpointMeta) else CheckpointMeta.from_dict(meta)
    get_spec(meta.model)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CONTAINER_VERSION,
        "meta_json": json.dumps(meta.to_dict()),
        "state_dict": {key: value.detach().cpu().contiguous() for key, value in network.state_dict().items()},
    }
    return atomic_write(path, lambda file: torch.save(payload, file))


def shipped_name(model: str, dataset: str = "mnist") -> str:
    """The name of a model's shipped checkpoint for a dataset: the registry name for MNIST (as before there was a
    second dataset), ``<dataset>-<model>`` for another, e.g. 'fashion-cnn'."""
    return model if dataset == "mnist" else f"{dataset}-{model}"


SHIPPED_NAMES: dict[str, tuple[str, str]] = {
    shipped_name(model, dataset): (model, dataset) for dataset in DATASETS for model in MODEL_NAMES}
"""Every shipped checkpoint's name → (registry model, dataset)."""


def checkpoint_path(name_or_path: str | os.PathLike, checkpoint_dir: str | os.PathLike | None = None) -> Path:
    """A shipped checkpoint's name (``shipped_name``: a registered model name for MNIST) maps to
    ``<checkpoint_dir>/<name>.pt``; anything else is taken as a path."""
    if str(name_or_path) in SHIPPED_NAMES:
        return resolve_checkpoint_dir(checkpoint_dir) / f"{name_or_path}{CHECKPOINT_SUFFIX}"
    return Path(name_or_path)


def evaluation_path(checkpoint: str | os.PathLike) -> Path:
    path = Path(checkpoint)
    return path.with_name(path.name.removesuffix(CHECKPOINT_SUFFIX) + EVALUATION_SUFFIX)


def partial_path(checkpoint: str | os.PathLike) -> Path:
    """Where the training that will produce ``checkpoint`` keeps its progress: ``<checkpoint name>.partial``."""
    path = Path(checkpoint)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def checkpoint_of_partial(partial: str | os.PathLike) -> Path:
    path = Path(partial)
    return path.with_name(path.name.removesuffix(PARTIAL_SUFFIX))


def staged_path(path: str | os.PathLike) -> Path:
    """The hidden name under which ``write_pair`` writes ``path`` before renaming it into place."""
    path = Path(path)
    return path.with_name(STAGED_PREFIX + path.name)


def write_pair(checkpoint: str | os.PathLike, network: nn.Module, meta: CheckpointMeta,
               evaluate: Callable[[Path], Evaluation], supersedes: str | os.PathLike | None = None) -> Evaluation:
    """Save ``network`` at ``checkpoint`` with its evaluation, replacing any previous pair only when both are done.
    ``supersedes`` (the training's partial file) is removed once the staged pair is complete. Callers hold the training
    lock, as the pipeline's do.

    ``evaluate`` receives the staged checkpoint file (its size is part of the record) and returns the Evaluation.
    """
    checkpoint = Path(checkpoint)
    staged_checkpoint, staged_evaluation = staged_path(checkpoint), staged_path(evaluation_path(checkpoint))
    finish_pending(checkpoint)  # an earlier save cut short between its renames goes first
    try:
        save_checkpoint(staged_checkpoint, network, meta)
        evaluation = evaluate(staged_checkpoint)
        evaluation.checkpoint = checkpoint.name
        write_json(staged_evaluation, evaluation.to_dict())  # from here on the staged pair is complete
    except BaseException:
        staged_evaluation.unlink(missing_ok=True)  # first: a staged evaluation alone would mark a complete pair
        staged_checkpoint.unlink(missing_ok=True)
        raise
    if supersedes is not None:
        Path(supersedes).unlink(missing_ok=True)
    finish_pending(checkpoint)
    return evaluation


def finish_pending(checkpoint: str | os.PathLike) -> None:
    """Complete a pair that ``write_pair`` staged in full but had not finished renaming (a crash between the two
    renames). For writers only, under the training lock."""
    checkpoint = Path(checkpoint)
    staged_evaluation = staged_path(evaluation_path(checkpoint))
    if not staged_evaluation.is_file():
        return
    try:
        with contextlib.suppress(FileNotFoundError):  # already renamed before the crash
            os.replace(staged_path(checkpoint), checkpoint)
    finally:  # even when interrupted here: never leave the new weights beside the old evaluation on purpose
        os.replace(staged_evaluation, evaluation_path(checkpoint))


def finish_pending_in(directory: str | os.PathLike) -> None:
    """Before a new run is saved in ``directory``: finish every complete staged pair, and remove staged checkpoints
    whose save died before its evaluation was staged (run names are never reused, so nothing would overwrite them).
    For writers only, under the training lock."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for staged in directory.glob(f"{STAGED_PREFIX}*{EVALUATION_SUFFIX}"):
        stem = staged.name.removeprefix(STAGED_PREFIX).removesuffix(EVALUATION_SUFFIX)
        finish_pending(directory / f"{stem}{CHECKPOINT_SUFFIX}")
    for orphan in directory.glob(f"{STAGED_PREFIX}*{CHECKPOINT_SUFFIX}"):
        orphan.unlink(missing_ok=True)


def clear_staged(checkpoint: str | os.PathLike) -> None:
    """Finish a complete staged pair of ``checkpoint``, and remove a staged checkpoint whose save died before its
    evaluation (its training's partial file still holds those weights). For writers only, under the training lock."""
    finish_pending(checkpoint)
    staged_path(checkpoint).unlink(missing_ok=True)


def _read_container(path: Path, container_format: str, what: str, mmap: bool = False
                    ) -> tuple[dict[str, Any], CheckpointMeta]:
    """(payload, meta) of a digit-lab file of ``container_format``, or a CheckpointError that says what is wrong.
    With ``mmap`` the tensors are mapped, not read: cheap when only the metadata is wanted."""
    if not path.is_file():
        raise CheckpointError(f"no {what} at {path}; train one with `digit-lab train`")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is damaged or not ours
        raise CheckpointError(f"{path.name} is corrupt or truncated, or not a PyTorch checkpoint at all")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path.name} was refused: it holds Python objects other than weights and plain data, "
                              f"which are never unpickled ({str(error).splitlines()[0]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise CheckpointError(f"{path.name} is corrupt or truncated and cannot be read ({type(error).__name__})"
                              ) from None
    if not isinstance(payload, dict) or payload.get("format") != container_format:
        raise CheckpointError(f"{path.name} is not a digit-lab {what} (a foreign file)")
    if payload.get("format_version") != CONTAINER_VERSION:
        raise CheckpointError(f"{path.name} has format version {payload.get('format_version')}; "
                              f"this version reads {CONTAINER_VERSION}")
    try:
        meta = CheckpointMeta.from_dict(json.loads(payload["meta_json"]))
        if not isinstance(payload["state_dict"], dict):
            raise TypeError
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path.name} has damaged metadata") from None
    except RecordError as error:
        raise CheckpointError(f"{path.name} has unusable metadata: {error}") from None
    meta.path = path
    return payload, meta


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], CheckpointMeta]:
    """(state_dict, meta) from a checkpoint file, or a CheckpointError that says what is wrong with it."""
    payload, meta = _read_container(Path(path), CHECKPOINT_FORMAT, "checkpoint")
    return payload["state_dict"], meta


@dataclass
class PartialTraining:
    """A partial file's content: the weights after ``meta.epochs_completed`` epochs, how they were made, and
    ``resume``: the optimizer's and scheduler's state dicts and the random generators' states."""

    weights: dict[str, torch.Tensor]
    meta: CheckpointMeta
    resume: dict[str, Any]


def save_partial(path: str | os.PathLike, weights: Mapping[str, torch.Tensor], meta: CheckpointMeta,
                 resume: Mapping[str, Any]) -> Path:
    """Write a training's progress after a finished epoch, atomically (see the module's docstring)."""
    payload = {
        "format": PARTIAL_FORMAT,
        "format_version": CONTAINER_VERSION,
        "meta_json": json.dumps(meta.to_dict()),
        "state_dict": {key: value.detach().cpu().contiguous() for key, value in weights.items()},
        "resume": dict(resume),
    }
    return atomic_write(path, lambda file: torch.save(payload, file))


def _usable_resume(resume: Any) -> TypeGuard[dict[str, Any]]:
    """A partial file's resume state: the optimizer's state, the scheduler's (or None) and the random states."""
    return (isinstance(resume, dict) and isinstance(resume.get("optimizer"), dict)
            and isinstance(resume.get("scheduler"), dict | None)
            and all(isinstance(resume.get(name), torch.Tensor) for name in RESUME_TENSORS))


def read_partial(path: str | os.PathLike, mmap: bool = False) -> PartialTraining:
    """A partial file's content, or a CheckpointError that says what is wrong with it (``mmap``: see
    ``_read_container``)."""
    path = Path(path)
    payload, meta = _read_container(path, PARTIAL_FORMAT, "partial training file", mmap)
    resume = payload.get("resume")
    if not _usable_resume(resume) or not meta.has_curves or meta.epochs_completed is None:
        raise CheckpointError(f"{path.name} has damaged training state")
    return PartialTraining(payload["state_dict"], meta, resume)


def load_checkpoint(name_or_path: str | os.PathLike, checkpoint_dir: str | os.PathLike | None = None
                    ) -> tuple[nn.Module, CheckpointMeta]:
    """(network in eval mode on the CPU, its convolutions' weights channels-last, metadata) for a registered name or
    a checkpoint path."""
    path = checkpoint_path(name_or_path, checkpoint_dir)
    state, meta = read_checkpoint(path)
    expected = SHIPPED_NAMES.get(str(name_or_path))
    if expected is not None and (meta.model, meta.dataset_name) != expected:
        raise CheckpointError(f"{path.name} holds a {meta.model!r} model trained on {meta.dataset_name}, not "
                              f"{expected[0]!r} on {expected[1]}")
    try:
        spec = get_spec(meta.model)
    except KeyError as error:
        raise CheckpointError(f"{path.name}: {error.args[0]}") from None
    try:
        network = for_dataset(spec.build(**meta.architecture), meta.dataset_name)
        network.load_state_dict(state, strict=True)
    except KeyError as error:  # a dataset this version does not know
        raise CheckpointError(f"{path.name}: {error.args[0]}") from None
    except (RuntimeError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path.name} does not fit the {meta.model} architecture: "
                              f"{str(error).splitlines()[0]}") from None
    # Channels-last weights let oneDNN run the convolutions and poolings without reordering: with inference's
    # channels-last input, 1.5-2.5x faster through the CNNs and MobileNet (benchmarks/bench_inference.py).
    # torch's stubs for Module.to lack the memory_format overload
    return network.to(memory_format=torch.channels_last).eval(), meta  # pyright: ignore[reportCallIssue]


def load_evaluation(name_or_path: str | os.PathLike, checkpoint_dir: str | os.PathLike | None = None,
                    meta: CheckpointMeta | None = None) -> Evaluation:
    """The Evaluation saved beside a checkpoint, or a CheckpointError when it is missing or unusable. Given the
    checkpoint's ``meta``, an evaluation of other weights (a save cut short) is refused too."""
    path = evaluation_path(checkpoint_path(name_or_path, checkpoint_dir))
    try:
        evaluation = Evaluation.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise CheckpointError(f"no evaluation at {path}; run `digit-lab evaluate`") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path.name} is not valid JSON") from None
    except RecordError as error:
        raise CheckpointError(f"{path.name} is unusable: {error}") from None
    if meta is not None and None not in (meta.weights_id, evaluation.weights_id) and (
            meta.weights_id != evaluation.weights_id):
        raise CheckpointError(f"{path.name} describes other weights than the checkpoint beside it (a save was cut "
                              f"short); run `digit-lab evaluate` or train again")
    return evaluation
