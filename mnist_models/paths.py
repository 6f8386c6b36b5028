"""Where the project keeps things, resolved from the package location so any working directory works."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
RUNS_DIR = REPO_ROOT / "runs"
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
