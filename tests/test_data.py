import dataclasses
import gzip

import numpy as np
import pytest
import torch
from torchvision.datasets import MNIST

from mnist_models import DatasetMissingError, load_mnist
from mnist_models.data import (
    DATASETS,
    MNIST_MEAN,
    MNIST_STD,
    augment_batch,
    dataset_available,
    get_dataset,
    load_dataset,
    normalize,
    read_idx,
    room_augment_batch,
    split_train_validation,
    tensor_checksum,
    to_unit_float,
)
from mnist_models.paths import DATA_DIR_ENV, DEFAULT_DATA_DIR, resolve_data_root
from tests.conftest import write_idx_dataset


def test_tiny_idx_fixture_loads_as_uint8_tensors(tiny_dataset):
    images, labels = load_mnist("train", tiny_dataset)
    assert images.shape == (60, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    test_images, _ = load_mnist("test", tiny_dataset)
    assert test_images.shape == (20, 28, 28)


def test_a_split_is_read_once_and_a_caller_cannot_corrupt_it_for_the_next(tiny_dataset, monkeypatch):
    images, labels = load_mnist("train", tiny_dataset)
    original_images, original_labels = images.clone(), labels.clone()
    images.zero_()
    labels.fill_(7)
    monkeypatch.setattr("torchvision.datasets.MNIST.__init__", lambda *args, **kwargs: pytest.fail("read again"))
    again, again_labels = load_mnist("train", tiny_dataset)
    assert torch.equal(again, original_images) and torch.equal(again_labels, original_labels)


def test_unknown_split_is_refused(tiny_dataset):
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation", tiny_dataset)


def test_missing_dataset_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(DatasetMissingError) as raised:
        load_mnist("test", tmp_path / "empty", download=False)
    message = str(raised.value)
    assert str((tmp_path / "empty").resolve()) in message and DATA_DIR_ENV in message


def test_failed_download_becomes_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # nothing listens there: fails at once
    with pytest.raises(DatasetMissingError, match="download failed"):
        load_mnist("test", tmp_path / "offline", download=True)


def test_data_root_comes_from_argument_then_environment_then_default(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert resolve_data_root("elsewhere").name == "elsewhere"
    assert resolve_data_root() == tmp_path
    monkeypatch.delenv(DATA_DIR_ENV)
    assert resolve_data_root() == DEFAULT_DATA_DIR


def test_validation_split_is_fixed_and_disjoint():
    images = torch.arange(1000, dtype=torch.int64).view(1000, 1, 1).expand(1000, 28, 28).to(torch.uint8)
    labels = torch.arange(1000)
    (train_x, train_y), (val_x, val_y) = split_train_validation(images, labels, 100)
    assert len(train_y) == 900 and len(val_y) == 100
    assert not set(train_y.tolist()) & set(val_y.tolist())
    again = split_train_validation(images, labels, 100)
    assert torch.equal(again[1][1], val_y)


def test_normalisation_matches_mnist_statistics():
    unit = to_unit_float(torch.tensor([[[0, 255] * 14] * 28], dtype=torch.uint8))
    assert unit.shape == (1, 1, 28, 28) and unit.max() == 1.0
    normalised = normalize(unit)
    assert normalised.min().item() == pytest.approx(-MNIST_MEAN / MNIST_STD)
    assert normalised.max().item() == pytest.approx((1 - MNIST_MEAN) / MNIST_STD)


def test_augmentation_moves_ink_a_little_and_never_mirrors():
    batch = torch.zeros(64, 1, 28, 28)
    batch[:, :, 6:22, 6:10] = 1.0  # a bar on the left side
    generator = torch.Generator().manual_seed(0)
    augmented = augment_batch(batch, 1.0, generator)
    assert augmented.shape == batch.shape
    assert not torch.equal(augmented, batch)
    columns = torch.arange(28.0)
    centre_x = (augmented.sum(dim=2).squeeze(1) * columns).sum(1) / augmented.sum(dim=(1, 2, 3))
    assert (centre_x < 12).all(), "the bar stays on the left: no flips, shifts of a few pixels"
    mass_ratio = augmented.sum(dim=(1, 2, 3)) / batch.sum(dim=(1, 2, 3))
    assert ((mass_ratio > 0.7) & (mass_ratio < 1.3)).all()
    assert torch.equal(augment_batch(batch, 0.0), batch)


def test_room_augmentation_changes_pens_sharpness_and_slant_but_keeps_the_digit_in_place():
    """Issue 24: the differences of real input, batched; peaks stay at 1 as preprocessing leaves them."""
    batch = torch.zeros(256, 1, 28, 28)
    batch[:, :, 6:22, 12:15] = 1.0  # a 1, three pixels wide, in the middle
    augmented = room_augment_batch(batch, torch.Generator().manual_seed(0))
    assert augmented.shape == batch.shape and augmented.min() >= 0
    assert torch.allclose(augmented.amax(dim=(1, 2, 3)), torch.ones(256))
    ink = (augmented > 0.5).sum(dim=(1, 2, 3)).float() / (batch > 0.5).sum(dim=(1, 2, 3))
    assert (ink > 1.4).any() and (ink < 0.8).any(), "some pens wider, some narrower"
    soft = ((augmented > 0.05) & (augmented < 0.95)).sum(dim=(1, 2, 3))
    assert (soft > 60).float().mean() > 0.3, "a good share blurred by resolution loss"
    columns = torch.arange(28.0)
    centre_x = (augmented.sum(dim=2).squeeze(1) * columns).sum(1) / augmented.sum(dim=(1, 2, 3))
    assert ((centre_x > 10) & (centre_x < 16)).all(), "slant and aspect keep the digit where it was"
    again = room_augment_batch(batch, torch.Generator().manual_seed(0))
    assert torch.equal(augmented, again), "the training generator decides every draw"


def test_checksum_changes_with_one_pixel(tiny_dataset):
    images, labels = load_mnist("test", tiny_dataset)
    changed = images.clone()
    changed[0, 0, 0] ^= 1
    assert tensor_checksum(images, labels) != tensor_checksum(changed, labels)


def test_real_mnist_has_the_known_sizes_and_balance(mnist_root):
    train_images, train_labels = load_mnist("train", mnist_root)
    test_images, test_labels = load_mnist("test", mnist_root)
    assert train_images.shape == (60000, 28, 28) and test_images.shape == (10000, 28, 28)
    counts = np.bincount(test_labels.numpy(), minlength=10)
    assert counts.sum() == 10000 and counts.min() > 850  # MNIST is roughly balanced: 892..1135 per digit


def test_fashion_mnist_loads_whole_with_its_own_statistics(fashion_root):
    images, labels = load_dataset("fashion", "train", fashion_root)
    assert images.shape == (60_000, 28, 28) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    assert torch.bincount(labels).tolist() == [6000] * 10
    unit = images.float() / 255
    spec = get_dataset("fashion")
    assert abs(unit.mean().item() - spec.mean) < 5e-4 and abs(unit.std().item() - spec.std) < 5e-4
    assert len(spec.classes) == 10 and spec.classes[9] == "Ankle boot"
    test_images, test_labels = load_dataset("fashion", "test", fashion_root)
    assert test_images.shape == (10_000, 28, 28) and torch.bincount(test_labels).tolist() == [1000] * 10
    assert not torch.equal(test_images[:100], load_mnist("test", fashion_root)[0][:100])


def test_mnist_through_load_dataset_is_load_mnist(tiny_dataset):
    for split in ("train", "test"):
        assert all(torch.equal(a, b) for a, b in zip(load_dataset("mnist", split, tiny_dataset),
                                                     load_mnist(split, tiny_dataset), strict=True))
    assert get_dataset("mnist").mean == MNIST_MEAN and get_dataset("mnist").std == MNIST_STD


def test_a_dataset_in_torchvision_layout_is_read_plain_or_gzipped(tmp_path):
    write_idx_dataset(tmp_path, 30, 10, folder="FashionMNIST")
    raw = tmp_path / "FashionMNIST" / "raw"
    plain = raw / "t10k-images-idx3-ubyte"
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz", "wb") as file:
        file.write(plain.read_bytes())
    expected = read_idx(plain)
    plain.unlink()  # only the gzipped twin left
    images, labels = load_dataset("fashion", "test", tmp_path)
    assert images.shape == (10, 28, 28) and np.array_equal(images.numpy(), expected)
    assert labels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert dataset_available(tmp_path, "fashion")


def test_missing_or_damaged_dataset_files_say_what_and_where(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "fashion", dataclasses.replace(DATASETS["fashion"], system_folders=()))
    with pytest.raises(DatasetMissingError, match="apt-get install dataset-fashion-mnist") as missing:
        load_dataset("fashion", "train", tmp_path / "empty")
    assert str(tmp_path / "empty" / "FashionMNIST" / "raw") in str(missing.value)
    assert not dataset_available(tmp_path / "empty", "fashion")
    write_idx_dataset(tmp_path / "cut", 30, 10, folder="FashionMNIST")
    damaged = tmp_path / "cut" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    damaged.write_bytes(damaged.read_bytes()[:-100])
    with pytest.raises(DatasetMissingError, match="truncated or damaged"):
        load_dataset("fashion", "train", tmp_path / "cut")
    with pytest.raises(KeyError, match="choose one of mnist, fashion"):
        load_dataset("cifar", "train")
