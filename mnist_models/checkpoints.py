"""Checkpoint files: weights plus JSON metadata, written atomically and read without unpickling code.

A checkpoint is a ``torch.save``d dict of plain types and tensors, so ``torch.load(weights_only=True)`` reads it; the
metadata travels as one JSON string inside it. Evaluation results live beside it as ``<stem>.metrics.json``.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
import torchvision
from torch import nn

from .paths import resolve_checkpoint_dir
from .registry import MODEL_NAMES, get_spec

CHECKPOINT_FORMAT = "digit-lab/checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_SUFFIX = ".pt"
METRICS_SUFFIX = ".metrics.json"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, corrupt, truncated, foreign or for another architecture."""


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(path: Path, write) -> None:
    """Write through ``write(file)`` to a temporary file beside ``path``, then rename: readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's private 0600 would hide shipped files from other users
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, lambda file: file.write(json.dumps(payload, separators=(",", ":")).encode()))


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Save ``model``'s weights with ``meta`` (must be JSON-serialisable and name a registered model)."""
    get_spec(meta["model"])
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "meta_json": json.dumps(meta),
        "state_dict": {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()},
    }
    atomic_write_bytes(path, lambda file: torch.save(payload, file))
    return path


def checkpoint_path(name_or_path: str | os.PathLike, checkpoint_dir: str | os.PathLike | None = None) -> Path:
    """A registered model name maps to ``<checkpoint_dir>/<name>.pt``; anything else is taken as a path."""
    if str(name_or_path) in MODEL_NAMES:
        return resolve_checkpoint_dir(checkpoint_dir) / f"{name_or_path}{CHECKPOINT_SUFFIX}"
    return Path(name_or_path)


def metrics_path(checkpoint: str | os.PathLike) -> Path:
    path = Path(checkpoint)
    return path.with_name(path.name.removesuffix(CHECKPOINT_SUFFIX) + METRICS_SUFFIX)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, meta) from a checkpoint file, or a CheckpointError that says what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one with `python -m mnist_models train`")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is damaged or not ours
        raise CheckpointError(f"{path.name} is corrupt or truncated, or not a PyTorch checkpoint at all")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path.name} was refused: it holds Python objects other than weights and plain data, "
                              f"which are never unpickled ({str(error).splitlines()[0]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise CheckpointError(f"{path.name} is corrupt or truncated and cannot be read ({type(error).__name__})"
                              ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path.name} is not a digit-lab checkpoint (a foreign file)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path.name} has format version {payload.get('format_version')}; "
                              f"this version reads {FORMAT_VERSION}")
    try:
        meta = json.loads(payload["meta_json"])
        state = payload["state_dict"]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path.name} has damaged metadata") from None
    return state, meta


def load_checkpoint(name_or_path: str | os.PathLike, checkpoint_dir: str | os.PathLike | None = None
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on the CPU, metadata) for a registered name or a checkpoint path."""
    path = checkpoint_path(name_or_path, checkpoint_dir)
    state, meta = read_checkpoint(path)
    model_name = meta.get("model")
    if str(name_or_path) in MODEL_NAMES and model_name != str(name_or_path):
        raise CheckpointError(f"{path.name} holds a {model_name!r} model, not {str(name_or_path)!r}")
    try:
        spec = get_spec(model_name)
    except KeyError as error:
        raise CheckpointError(f"{path.name}: {error.args[0]}") from None
    try:
        model = spec.build(**meta.get("architecture", {}))
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path.name} does not fit the {model_name} architecture: "
                              f"{str(error).splitlines()[0]}") from None
    meta["path"] = str(path)
    return model.eval(), meta


def load_metrics(name_or_path: str | os.PathLike, checkpoint_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The evaluation JSON saved beside a checkpoint, or a CheckpointError when it is missing or unreadable."""
    path = metrics_path(checkpoint_path(name_or_path, checkpoint_dir))
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"no evaluation results at {path}; run `python -m mnist_models evaluate`") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{path.name} is not valid JSON") from None


def training_metadata(result, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON metadata of a finished TrainResult: what was trained, how, on what, with which libraries."""
    spec = get_spec(result.config.model)
    config = result.config.to_dict()
    return {
        "model": spec.name,
        "title": spec.title,
        "architecture": {**spec.architecture_defaults, **config.pop("architecture")},
        "training": config,
        "epochs_completed": result.epochs_completed,
        "cancelled": result.cancelled,
        "history": result.history,
        "initialisation": result.initialisation,
        "parameters": sum(parameter.numel() for parameter in result.model.parameters()),
        "dataset": {"name": "MNIST", "train_sha256": result.train_checksum},
        "device": result.device,
        "train_time_s": round(result.train_time_s, 3),
        "created": utc_now(),
        "versions": library_versions(),
        **(extra or {}),
    }
