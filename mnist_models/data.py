"""MNIST as whole tensors: loaded once per split, normalised and augmented a batch at a time.

Training and evaluation never touch PIL or per-sample transforms: a split is one uint8 tensor (N, 28, 28) and one
int64 label tensor, and everything else is tensor arithmetic on batches.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.datasets import MNIST

from .errors import DigitLabError
from .paths import DATA_DIR_ENV, resolve_data_root

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
SPLITS = ("train", "test")
VALIDATION_SIZE = 5000
SPLIT_SEED = 20240501  # fixed, so the validation images are the same in every run and checkpoint


class DatasetMissingError(DigitLabError, RuntimeError):
    """MNIST is not on disk and could not be downloaded; the message says where it looked and how to fix it."""


def _missing_message(root: Path, reason: str) -> str:
    return (
        f"MNIST was not found in {root.resolve()}/MNIST/raw ({reason}). "
        f"Put the four IDX files there (torchvision's layout), or point {DATA_DIR_ENV} at a folder that holds "
        f"MNIST/raw, e.g. `export {DATA_DIR_ENV}=../shared/data`, or pass --data-dir."
    )


def load_mnist(split: str, root: str | os.PathLike | None = None, download: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images uint8 (N, 28, 28), labels int64 (N,)) for 'train' (60,000) or 'test' (10,000).

    A missing dataset is downloaded from torchvision's mirrors when ``download`` is true and the network allows;
    otherwise a DatasetMissingError names the folder searched. The files are read once per (split, folder); each
    call returns its own copy, so a caller that writes into its tensors cannot corrupt a later caller's.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    images, labels = _load_cached(split, resolve_data_root(root).resolve(), download)
    return images.clone(), labels.clone()


@functools.lru_cache(maxsize=4)
def _load_cached(split: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        dataset = MNIST(str(root), train=split == "train", download=False)
    except RuntimeError:
        if not download:
            raise DatasetMissingError(_missing_message(root, "downloading is off")) from None
        try:
            dataset = MNIST(str(root), train=split == "train", download=True)
        except Exception as error:  # network errors come in many types; all mean the same to the user
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DatasetMissingError(_missing_message(root, f"download failed: {first_line}")) from None
    return dataset.data.contiguous(), dataset.targets.to(torch.int64).contiguous()


def require_dataset(root: str | os.PathLike | None = None) -> Path:
    """The dataset folder, once both splits have been read there without downloading (and cached), else a
    DatasetMissingError. Makes no copies: it only checks."""
    resolved = resolve_data_root(root).resolve()
    for split in SPLITS:
        _load_cached(split, resolved, False)
    return resolved


def dataset_available(root: str | os.PathLike | None = None) -> bool:
    """True when both splits can be read without downloading."""
    try:
        require_dataset(root)
    except DatasetMissingError:
        return False
    return True


def tensor_checksum(images: torch.Tensor, labels: torch.Tensor) -> str:
    """SHA-256 of a split's bytes, recorded in checkpoints so results can be traced to the exact data."""
    digest = hashlib.sha256()
    digest.update(images.numpy().tobytes())
    digest.update(labels.numpy().tobytes())
    return digest.hexdigest()


def split_train_validation(
    images: torch.Tensor, labels: torch.Tensor, validation_size: int = VALIDATION_SIZE
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Hold out a fixed, seeded validation set from the training images (the test set stays untouched)."""
    if not 0 < validation_size < len(images):
        raise ValueError(f"validation_size must be between 1 and {len(images) - 1}")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(SPLIT_SEED))
    train_index, val_index = order[validation_size:], order[:validation_size]
    return (images[train_index], labels[train_index]), (images[val_index], labels[val_index])


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) or float (N, 28, 28) in 0..1 → float (N, 1, 28, 28) in 0..1."""
    if images.dtype == torch.uint8:
        images = images.float().div_(255.0)
    else:
        images = images.float()
    return images.unsqueeze(1) if images.dim() == 3 else images


def normalize(unit_images: torch.Tensor) -> torch.Tensor:
    """Standardise with MNIST's training mean and std, the models' expected input."""
    return (unit_images - MNIST_MEAN) / MNIST_STD


def augment_batch(unit_images: torch.Tensor, strength: float = 1.0, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """Random small rotation, shift and zoom of a (N, 1, 28, 28) batch in 0..1, as one batched affine warp.

    At strength 1: rotation up to ±12°, shift up to ±2.5 px, zoom 0.9–1.1. Never flips: a mirrored 2 is no 2.
    """
    if strength <= 0:
        return unit_images
    count = unit_images.shape[0]
    device = unit_images.device

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(count, generator=generator) * 2 - 1).mul_(limit * strength).to(device)

    angle = uniform(math.radians(12))
    scale = 1 + uniform(0.1)
    shift_x, shift_y = uniform(2.5 / 14), uniform(2.5 / 14)  # affine_grid's coordinates span 2 units per 28 px
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta, list(unit_images.shape), align_corners=False)
    return F.grid_sample(unit_images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
