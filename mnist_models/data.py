"""The datasets as whole tensors: loaded once per split, normalised and augmented a batch at a time.

Training and evaluation never touch PIL or per-sample transforms: a split is one uint8 tensor (N, 28, 28) and one
int64 label tensor, and everything else is tensor arithmetic on batches. Two datasets share that format: MNIST
(handwritten digits) and Fashion-MNIST (ten kinds of clothing), each described by a :class:`DatasetSpec`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DigitLabError
from .paths import DATA_DIR_ENV, resolve_data_root

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
SPLITS = ("train", "test")
VALIDATION_SIZE = 5000
SPLIT_SEED = 20240501  # fixed, so the validation images are the same in every run and checkpoint


@dataclass(frozen=True)
class DatasetSpec:
    """What the data layer knows of a 28×28 gray ten-class dataset."""

    name: str  # what the CLI, the records and load_dataset call it
    title: str
    classes: tuple[str, ...]  # label k's name
    mean: float  # of the training pixels on a 0..1 scale: the normalisation its models are trained with
    std: float
    folder: str  # torchvision's layout: <data root>/<folder>/raw holds the IDX files
    system_folders: tuple[Path, ...] = ()  # where an operating-system package keeps them (gzipped)
    install_hint: str = ""


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("mnist", "MNIST", tuple("0123456789"), MNIST_MEAN, MNIST_STD, "MNIST"),
    DatasetSpec("fashion", "Fashion-MNIST",
                ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"), 0.2860, 0.3530, "FashionMNIST", (Path("/usr/share/datasets/fashion-mnist"),),
                "on Debian or Ubuntu: `apt-get install dataset-fashion-mnist`"),
)}
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class DatasetMissingError(DigitLabError, RuntimeError):
    """A dataset is not on disk and could not be downloaded; the message says where it looked and how to fix it."""


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None


def _missing_message(root: Path, reason: str) -> str:
    return (
        f"MNIST was not found in {root.resolve()}/MNIST/raw ({reason}). "
        f"Put the four IDX files there (torchvision's layout), or point {DATA_DIR_ENV} at a folder that holds "
        f"MNIST/raw, e.g. `export {DATA_DIR_ENV}=../shared/data`, or pass --data-dir."
    )


def load_dataset(name: str, split: str, root: str | os.PathLike | None = None, download: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of dataset ``name``'s 'train' or 'test' split.

    Files are looked for under the data root in torchvision's layout (``<root>/<folder>/raw``, plain or gzipped),
    then in the folders an operating-system package installs them to. MNIST is downloaded from torchvision's mirrors
    when ``download`` is true and it is missing. A DatasetMissingError names the folders searched. The files are
    read once per (dataset, split, folder); each call returns its own copy, so a caller that writes into its tensors
    cannot corrupt a later caller's.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    get_dataset(name)
    images, labels = _load_cached(name, split, resolve_data_root(root).resolve(), download)
    return images.clone(), labels.clone()


def load_mnist(split: str, root: str | os.PathLike | None = None, download: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's 'train' (60,000) or 'test' (10,000) split: ``load_dataset("mnist", ...)``."""
    return load_dataset("mnist", split, root, download)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "mnist":
        return _load_mnist_files(split, root, download)
    return _load_idx_pair(get_dataset(name), split, root)


def _load_mnist_files(split: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST read as any IDX pair; torchvision (imported only then: 1-2 s of a process's start) downloads it when
    it is missing and ``download`` is true."""
    spec = get_dataset("mnist")
    if _idx_folder(spec, split, root) is None:
        if not download:
            raise DatasetMissingError(_missing_message(root, "downloading is off"))
        from torchvision.datasets import MNIST

        try:
            MNIST(str(root), train=split == "train", download=True)
        except Exception as error:  # network errors come in many types; all mean the same to the user
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DatasetMissingError(_missing_message(root, f"download failed: {first_line}")) from None
    return _load_idx_pair(spec, split, root)


def _searched_folders(spec: DatasetSpec, root: Path) -> list[Path]:
    """Where a dataset's IDX files are looked for, in order: torchvision's layout under the data root, then the
    folders an operating-system package installs them to."""
    return [root / spec.folder / "raw", *spec.system_folders]


def _idx_folder(spec: DatasetSpec, split: str, root: Path) -> tuple[Path, list[Path]] | None:
    """The first folder searched that holds both of the split's files, and the files (plain or gzipped)."""
    for folder in _searched_folders(spec, root):
        paths = [path for name in IDX_FILES[split] if (path := _existing(folder / name)) is not None]
        if len(paths) == len(IDX_FILES[split]):
            return folder, paths
    return None


def _load_idx_pair(spec: DatasetSpec, split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    found = _idx_folder(spec, split, root)
    if found is None:
        searched = ", ".join(str(folder) for folder in _searched_folders(spec, root))
        raise DatasetMissingError(f"{spec.title} was not found (looked for its IDX files in {searched}). Install it "
                                  f"({spec.install_hint}), or put the files in <data root>/{spec.folder}/raw and "
                                  f"point {DATA_DIR_ENV} or --data-dir at the data root.")
    folder, paths = found
    images, labels = (read_idx(path) for path in paths)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
        raise DatasetMissingError(f"{spec.title}'s {split} files in {folder} hold images of shape "
                                  f"{images.shape} and labels of shape {labels.shape}, not one label per "
                                  f"28×28 image: damaged, or not its files")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def _existing(path: Path) -> Path | None:
    """``path`` itself or its gzipped twin, whichever exists."""
    return next((candidate for candidate in (path, path.with_name(path.name + ".gz")) if candidate.is_file()), None)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (the format of MNIST and Fashion-MNIST; plain or gzipped) of unsigned bytes as an array."""
    path = Path(path)
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as file:
        data = file.read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DatasetMissingError(f"{path} is not an IDX file of unsigned bytes")
    dimensions = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * index:8 + 4 * index], "big") for index in range(dimensions))
    offset = 4 + 4 * dimensions
    if len(data) - offset != math.prod(shape):
        raise DatasetMissingError(f"{path} is truncated or damaged: {len(data) - offset} bytes for shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` of unsigned bytes (any shape) in the IDX format ``read_idx`` reads, so that any MNIST reader reads it:
    the type and the number of dimensions, each size big-endian, then the bytes."""
    if array.dtype != np.uint8:
        raise ValueError(f"IDX files here hold unsigned bytes, not {array.dtype}")
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def require_dataset(root: str | os.PathLike | None = None, name: str = "mnist") -> Path:
    """The data root, once both splits of dataset ``name`` have been read there without downloading (and cached),
    else a DatasetMissingError. Makes no copies: it only checks."""
    resolved = resolve_data_root(root).resolve()
    for split in SPLITS:
        _load_cached(get_dataset(name).name, split, resolved, False)
    return resolved


def dataset_available(root: str | os.PathLike | None = None, name: str = "mnist") -> bool:
    """True when both splits of dataset ``name`` can be read without downloading."""
    try:
        require_dataset(root, name)
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


def dataset_of(source: str | DatasetSpec | torch.nn.Module) -> DatasetSpec:
    """The dataset a name, a spec or a network stands for. A network carries the name of the dataset it was trained
    on (``for_dataset``); one that carries none was built before datasets were recorded, so it is MNIST's."""
    if isinstance(source, DatasetSpec):
        return source
    return get_dataset(source if isinstance(source, str) else getattr(source, "dataset", "mnist"))


def for_dataset(network: torch.nn.Module, name: str) -> torch.nn.Module:
    """Mark ``network`` as trained on dataset ``name``: ``normalize`` then uses that dataset's constants for it."""
    # torch types Module.__setattr__ for tensors and modules only; a plain attribute is set as on any object
    network.dataset = get_dataset(name).name  # pyright: ignore[reportArgumentType]
    return network


def normalize(unit_images: torch.Tensor, dataset: str | DatasetSpec | torch.nn.Module = "mnist") -> torch.Tensor:
    """Standardise with the training mean and std of ``dataset`` (a name, a spec, or the network about to read the
    images, which knows its own): the input the models were trained on."""
    spec = dataset_of(dataset)
    return (unit_images - spec.mean) / spec.std


ROOM_THICKER, ROOM_THINNER = 0.5, 0.1  # shares of a batch drawn with a wider pen (half of them much wider) or narrower
ROOM_SHEAR, ROOM_ASPECT = 0.3, 0.25  # slant (x shifted by up to 0.3 of y) and width (±25%)
ROOM_LOW_RESOLUTION = 0.6  # share reduced to ROOM_SIDES cells across 28 px (the 20 px box to about 7-11) and enlarged
ROOM_SIDES = (10, 16)
ROOM_CONTRAST = 0.3  # share with a gamma between 0.5 and 2


def room_augment_batch(unit_images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """How real input differs from MNIST, on a (N, 1, 28, 28) batch in 0..1, each change to a random part of it.

    Digits that reach the room were written with other pens, scanned or photographed small, and slanted and shaped
    by other hands; after preprocessing (crop, fit 20x20, centre) what is left of that is: stroke thickness (a
    pen's width: dilation or erosion), resolution loss and blur (the digit, as a bitmap, counted in the cells of a
    coarse grid, its 20 px box 7-11 cells across, and enlarged smoothly, as an 8x8 scan or a distant photo gives
    it), slant and aspect (a shear, a narrower or wider hand) and contrast (a gamma: soft pencil or hard marker).
    The peak is kept at 1, as preprocessing scales it.
    """
    count, device = unit_images.shape[0], unit_images.device

    def chosen(share: float) -> torch.Tensor:
        return (torch.rand(count, generator=generator) < share).to(device).view(-1, 1, 1, 1)

    def uniform(low: float, high: float) -> torch.Tensor:
        return (low + (high - low) * torch.rand(count, generator=generator)).to(device)

    images = unit_images
    thicker = F.max_pool2d(images, 3, stride=1, padding=1)
    boldest = F.max_pool2d(thicker, 3, stride=1, padding=1)
    thinner = -F.max_pool2d(-images, 3, stride=1, padding=1)
    pen = torch.rand(count, generator=generator).to(device).view(-1, 1, 1, 1)
    images = torch.where(pen < ROOM_THICKER / 2, boldest, torch.where(pen < ROOM_THICKER, thicker, torch.where(
        pen > 1 - ROOM_THINNER, thinner, images)))
    shear, aspect = uniform(-ROOM_SHEAR, ROOM_SHEAR), uniform(1 - ROOM_ASPECT, 1 + ROOM_ASPECT)
    ones, zeros = torch.ones(count, device=device), torch.zeros(count, device=device)
    theta = torch.stack([torch.stack([aspect, shear, zeros], 1), torch.stack([zeros, ones, zeros], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    blurred = chosen(ROOM_LOW_RESOLUTION)
    side = int(torch.randint(ROOM_SIDES[0], ROOM_SIDES[1] + 1, (1,), generator=generator))  # one size a batch
    small = F.interpolate((images > 0.5).to(images.dtype), size=(side, side), mode="area")  # a scanner's cells
    enlarged = F.interpolate(small, size=images.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
    images = torch.where(blurred, enlarged, images)
    gamma = torch.where(chosen(ROOM_CONTRAST).view(-1), uniform(0.5, 2.0), ones).view(-1, 1, 1, 1)
    images = images.clamp(0, 1) ** gamma
    peak = images.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return images / peak


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
