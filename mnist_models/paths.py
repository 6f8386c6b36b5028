"""Where the project keeps things: resolved from the package location in a checkout, so any working directory works."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CHECKOUT = (REPO_ROOT / "app.py").is_file()
# The folders below default to the checkout's; an installed package (no checkout around it) uses the working directory.
PROJECT_ROOT = REPO_ROOT if IN_CHECKOUT else Path.cwd()
CHECKPOINT_DIR = PROJECT_ROOT / "checkpoints"
RUNS_DIR = PROJECT_ROOT / "runs"
CHECKPOINT_DIR_ENV = "DIGIT_LAB_CHECKPOINT_DIR"
RUNS_DIR_ENV = "DIGIT_LAB_RUNS_DIR"
TRAINING_LOCK_ENV = "DIGIT_LAB_TRAINING_LOCK"
DATA_DIR_ENV = "MNIST_DATA_DIR"
ROOM_DB_ENV = "DIGIT_LAB_ROOM_DB"  # the database of the room's drawings (store/room_db.py); unset: runs/room.sqlite
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"


def _resolve(explicit: str | os.PathLike | None, env: str, default: Path) -> Path:
    """The explicit value, else the environment variable ``env`` when set and non-empty, else ``default``."""
    if explicit is not None:
        return Path(explicit).expanduser()
    return Path(os.environ.get(env) or default).expanduser()


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset root: the explicit argument, else $MNIST_DATA_DIR, else the repository's ./data."""
    return _resolve(root, DATA_DIR_ENV, DEFAULT_DATA_DIR)


def resolve_checkpoint_dir(directory: str | os.PathLike | None = None) -> Path:
    """Where checkpoints are read and written: the argument, else $DIGIT_LAB_CHECKPOINT_DIR, else checkpoints/."""
    return _resolve(directory, CHECKPOINT_DIR_ENV, CHECKPOINT_DIR)


def resolve_runs_dir(directory: str | os.PathLike | None = None) -> Path:
    """Where the Train page saves its runs: the argument, else $DIGIT_LAB_RUNS_DIR, else runs/ (git-ignored)."""
    return _resolve(directory, RUNS_DIR_ENV, RUNS_DIR)


def resolve_training_lock() -> Path:
    """The lock file that lets one training job run at a time on this machine (per user, in the temporary folder),
    unless $DIGIT_LAB_TRAINING_LOCK names another."""
    return _resolve(None, TRAINING_LOCK_ENV, Path(tempfile.gettempdir()) / f"digit-lab-training-{os.getuid()}.lock")
