"""Where the project keeps things, resolved from the package location so any working directory works."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
RUNS_DIR = REPO_ROOT / "runs"
CHECKPOINT_DIR_ENV = "DIGIT_LAB_CHECKPOINT_DIR"
RUNS_DIR_ENV = "DIGIT_LAB_RUNS_DIR"
TRAINING_LOCK_ENV = "DIGIT_LAB_TRAINING_LOCK"
DATA_DIR_ENV = "MNIST_DATA_DIR"
DEFAULT_DATA_DIR = REPO_ROOT / "data"


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset root: the explicit argument, else $MNIST_DATA_DIR, else the repository's ./data."""
    if root is not None:
        return Path(root).expanduser()
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    return DEFAULT_DATA_DIR


def resolve_checkpoint_dir(directory: str | os.PathLike | None = None) -> Path:
    """Where checkpoints are read and written: the argument, else $DIGIT_LAB_CHECKPOINT_DIR, else checkpoints/."""
    if directory is not None:
        return Path(directory).expanduser()
    return Path(os.environ.get(CHECKPOINT_DIR_ENV) or CHECKPOINT_DIR).expanduser()


def resolve_runs_dir(directory: str | os.PathLike | None = None) -> Path:
    """Where the Train page saves its runs: the argument, else $DIGIT_LAB_RUNS_DIR, else runs/ (git-ignored)."""
    if directory is not None:
        return Path(directory).expanduser()
    return Path(os.environ.get(RUNS_DIR_ENV) or RUNS_DIR).expanduser()


def resolve_training_lock() -> Path:
    """The lock file that lets one training job run at a time on this machine (per user, in the temporary folder),
    unless $DIGIT_LAB_TRAINING_LOCK names another."""
    default = Path(tempfile.gettempdir()) / f"digit-lab-training-{os.getuid()}.lock"
    return Path(os.environ.get(TRAINING_LOCK_ENV) or default).expanduser()
