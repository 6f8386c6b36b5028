"""The map of the digits as a model sees them: features from every model, a UMAP fit on real test digits whose placer
puts held-out ones among their own class, and map files that round-trip (version 1 ones converted) or fail with a
RecordError naming them."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from torch import nn

from mnist_models.data import load_mnist
from mnist_models.feature_space import (
    MAP_SUFFIX,
    MAP_VERSION,
    FeatureMap,
    fit_feature_map,
    load_feature_map,
    map_path,
    penultimate_features,
    place,
    project,
    save_feature_map,
)
from mnist_models.models.registry import MODEL_NAMES, get_spec
from mnist_models.store.checkpoints import load_checkpoint
from mnist_models.store.files import format_bytes
from mnist_models.store.records import RecordError

SUBSET = 1000  # the first test digits; the map is fitted on COUNT of them and the rest are held out
COUNT = 800


@pytest.fixture(scope="module")
def test_digits(mnist_root: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist("test", mnist_root, download=False)
    return np.asarray(images), np.asarray(labels)


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    return load_checkpoint("cnn")[0]


@pytest.fixture(scope="module")
def small_map(test_digits, cnn) -> FeatureMap:
    images, labels = test_digits
    return fit_feature_map(cnn, "cnn", images[:SUBSET], labels[:SUBSET], count=COUNT, seed=0)


@pytest.fixture(scope="module")
def held_out(small_map) -> np.ndarray:
    return np.setdiff1d(np.arange(SUBSET), small_map.indices)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_penultimate_features_are_the_last_linear_input_for_every_model(name, test_digits):
    network = get_spec(name).build()
    network.train()
    last = [module for module in network.modules() if isinstance(module, nn.Linear)][-1]
    features = penultimate_features(network, test_digits[0][:4], batch_size=3)  # two batches
    assert features.shape == (4, last.in_features) and features.dtype == np.float32
    assert np.isfinite(features).all()
    assert not any(module._forward_pre_hooks or module._forward_hooks for module in network.modules())
    assert all(module.training for module in network.modules())  # the caller's mode handed back


def test_fit_records_a_seeded_sample_with_labels_and_predictions(small_map, test_digits):
    labels = test_digits[1]
    assert small_map.model == "cnn" and small_map.format_version == MAP_VERSION
    assert small_map.indices.dtype == np.int32 and len(np.unique(small_map.indices)) == COUNT
    assert small_map.coordinates.shape == (COUNT, 2) and small_map.coordinates.dtype == np.float32
    assert np.array_equal(small_map.labels, labels[small_map.indices])
    assert (small_map.predictions == small_map.labels).mean() > 0.97  # the shipped CNN's accuracy, roughly
    assert small_map.pca is not None and small_map.pca.n_components_ == 50  # the CNN has 128 features


def test_held_out_digits_land_in_their_own_class(small_map, cnn, test_digits, held_out):
    images, labels = test_digits
    points = project(small_map, cnn, images[held_out])
    centroids = np.stack([small_map.coordinates[small_map.labels == digit].mean(0) for digit in range(10)])
    nearest_centroid = np.linalg.norm(points[:, None] - centroids[None], axis=2).argmin(1)
    share = (nearest_centroid == labels[held_out]).mean()
    print(f"\n{len(held_out)} held-out digits nearest their own class's centroid: {share:.1%}")
    assert share >= 0.85

    same = [(small_map.labels[np.searchsorted(small_map.indices, place(small_map, cnn, images[index]).nearest)]
             == labels[index]).mean() for index in held_out[:15]]
    print(f"their 8 nearest map digits share their label: {np.mean(same):.1%}")
    assert np.mean(same) >= 0.8


def test_place_returns_test_set_indices_nearest_in_the_map(small_map, cnn, test_digits, held_out):
    image = test_digits[0][held_out[0]]
    placement = place(small_map, cnn, image, k=5)
    assert placement.xy.shape == (2,) and placement.nearest.shape == (5,)
    assert set(placement.nearest) <= set(small_map.indices.tolist())
    rows = np.searchsorted(small_map.indices, placement.nearest)
    distances = np.linalg.norm(small_map.coordinates[rows] - placement.xy, axis=1)
    assert np.all(np.diff(distances) >= 0)
    assert distances[-1] <= np.sort(np.linalg.norm(small_map.coordinates - placement.xy, axis=1))[4] + 1e-6


def test_save_and_load_round_trip(small_map, cnn, test_digits, held_out, tmp_path):
    image = test_digits[0][held_out[1]]
    before = place(small_map, cnn, image)
    path = save_feature_map(map_path(tmp_path / "cnn.pt"), small_map)
    assert path.name == "cnn" + MAP_SUFFIX
    loaded = load_feature_map(path)
    assert np.array_equal(loaded.coordinates, small_map.coordinates)
    assert np.array_equal(loaded.indices, small_map.indices)
    after = place(loaded, cnn, image)
    assert np.allclose(after.xy, before.xy, atol=1e-3)
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_map_files_are_record_errors_naming_the_file(small_map, tmp_path):
    with pytest.raises(RecordError, match="missing.map.pkl"):
        load_feature_map(tmp_path / "missing.map.pkl")

    good = save_feature_map(tmp_path / "good.map.pkl", small_map).read_bytes()
    (tmp_path / "cut.map.pkl").write_bytes(good[: len(good) // 2])
    with pytest.raises(RecordError, match="cut.map.pkl"):
        load_feature_map(tmp_path / "cut.map.pkl")
    (tmp_path / "noise.map.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(RecordError, match="noise.map.pkl"):
        load_feature_map(tmp_path / "noise.map.pkl")

    (tmp_path / "dict.map.pkl").write_bytes(pickle.dumps({"coordinates": []}))
    with pytest.raises(RecordError, match="dict.map.pkl holds a dict"):
        load_feature_map(tmp_path / "dict.map.pkl")

    newer = FeatureMap(**{**vars(small_map), "format_version": MAP_VERSION + 1})
    (tmp_path / "newer.map.pkl").write_bytes(pickle.dumps(newer, protocol=5))
    with pytest.raises(RecordError, match=f"newer.map.pkl: format version {MAP_VERSION + 1} is newer"):
        load_feature_map(tmp_path / "newer.map.pkl")



def test_a_version_1_map_is_read_and_places_as_a_new_one_does(small_map, cnn, test_digits, held_out, tmp_path):
    """Version 1 kept the fitted UMAP object, whose training data (the map digits' reduced features) the placer is
    built from when the file is read; a stand-in object carries that data here, as UMAP's did."""
    images = test_digits[0]
    reduced = small_map.pca.transform(penultimate_features(cnn, images[small_map.indices]).astype(np.float64))
    old = FeatureMap.__new__(FeatureMap)
    vars(old).update({name: value for name, value in vars(small_map).items() if name != "placer"},
                     umap_model=SimpleNamespace(_raw_data=reduced.astype(np.float32)), format_version=1)
    (tmp_path / "old.map.pkl").write_bytes(pickle.dumps(old, protocol=5))
    loaded = load_feature_map(tmp_path / "old.map.pkl")
    assert loaded.format_version == MAP_VERSION and not hasattr(loaded, "umap_model")
    new, converted = (place(feature_map, cnn, images[held_out[2]]) for feature_map in (small_map, loaded))
    assert np.allclose(converted.xy, new.xy, atol=1e-3) and np.array_equal(converted.nearest, new.nearest)

@pytest.mark.slow
def test_full_size_map_of_the_shipped_cnn(test_digits, cnn, tmp_path):
    """The figures a shipped map costs: fit time for 3,000 digits, file size, one placement after warm-up."""
    images, labels = test_digits
    started = time.perf_counter()
    feature_map = fit_feature_map(cnn, "cnn", images, labels)
    fit_s = time.perf_counter() - started
    size = save_feature_map(tmp_path / "cnn.map.pkl", feature_map).stat().st_size
    loaded = load_feature_map(tmp_path / "cnn.map.pkl")
    started = time.perf_counter()
    placement = place(loaded, cnn, images[0])
    place_s = time.perf_counter() - started
    print(f"\nmap of 3,000 digits (cnn): fit {fit_s:.1f} s, file {format_bytes(size)}, first placement "
          f"{place_s * 1000:.0f} ms")
    assert len(feature_map.indices) == 3000
    assert size < 3_000_000
    assert placement.nearest.shape == (8,)
