"""A map of the digits as a model sees them: each test digit placed by the model's penultimate features, in 2-D.

A classifier's last layer only draws lines through the space its previous layers built. Projected to two dimensions
with UMAP, that space shows a stakeholder what the model has learnt: ten islands, one per digit, the closer two
islands the more alike the model finds those digits, and the test digits it gets wrong on the shore between them
(a 4 sitting among the 9s). A new digit drawn by a visitor is placed on the same map (``place``), with the test
digits nearest to it, so "why did it say 9?" can be answered with "because to the model it looks like these".

``fit_feature_map`` samples ``count`` test digits (3,000 by default), reduces their features to at most 50
dimensions with PCA and fits UMAP on those; ``save_feature_map`` keeps the result beside the checkpoint
(``cnn.pt`` → ``cnn.map.pkl``).

A new digit is placed where its 15 nearest map digits (in the reduced feature space) are, weighted by closeness:
scikit-learn's ``KNeighborsRegressor``, which is also how UMAP's own ``transform`` starts before it optimises. On
1,000 held-out test digits per model the two placements were a median 0.12-0.15 map units apart (the map spans
about 30), and the share of digits nearest their own class's centre moved by at most 1.1 points (CNN 98.4 → 97.9%,
MLP 95.5 → 94.4%, ResNet 99.5 → 99.5%). UMAP's ``transform`` compiled numba code for 6-15 s in every new process,
the biggest part of a dashboard server's start; the placer needs no compilation and places 1,000 digits in 20-50 ms,
so UMAP is needed only to fit a map.

The files are pickles, because the fitted PCA and placer are what place new digits, and pickle runs code when it
loads. They are trusted exactly like the checkpoints beside them: the shipped ones are written by this project, a
run's by the Train page of this installation. ``load_feature_map`` reads only the path its caller passes, and callers
pass paths under the checkpoint or runs folders (``map_path`` of a checkpoint), never a file a visitor uploaded.
"""

from __future__ import annotations

import functools
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .extras import needs_extra
from .inference import BATCH_SIZE, as_image_batch, predict_logits
from .store.files import atomic_write
from .store.records import RecordError, check_version, utc_now

MAP_SUFFIX = ".map.pkl"
MAP_VERSION = 2
"""2: a nearest-neighbour placer instead of the fitted UMAP object (version 1 files are converted when read)."""
DEFAULT_COUNT = 3000
"""Test digits on a map: enough for every digit's island and its shores, few enough that UMAP fits in seconds and
keeps its exact (brute-force) neighbour search below its 4,096-point threshold, and that the file stays small."""
PCA_DIMENSIONS = 50
"""The placer keeps the map digits' reduced features to place new digits; 50 principal components keep it small and
its distances meaningful (the CNN's 128 features, MobileNet's 1,024)."""
N_NEIGHBORS = 15
"""UMAP's neighbourhood when fitting, and the placer's when placing a new digit."""
MIN_DIST = 0.1

ProgressCallback = Callable[[str], None]
"""Told the stage a fit has reached: "features", "pca", "umap"."""


@dataclass
class FeatureMap:
    """A model's map of ``len(indices)`` test digits and the fitted projection that places new ones on it."""

    model: str  # the registry name of the architecture
    indices: np.ndarray  # int32 (N,): which test-set digits are on the map
    coordinates: np.ndarray  # float32 (N, 2)
    labels: np.ndarray  # int64 (N,): their true digits
    predictions: np.ndarray  # int64 (N,): what the model said they are
    pca: Any  # sklearn.decomposition.PCA, or None when the features had at most PCA_DIMENSIONS dimensions
    placer: Any  # sklearn.neighbors.KNeighborsRegressor from the reduced features to the coordinates
    weights_id: str | None = None  # the checkpoint weights the map was made from, when known
    seed: int = 0
    fit_time_s: float | None = None
    created: str | None = None
    format_version: int = field(default=MAP_VERSION, compare=False)

    @property
    def misclassified(self) -> np.ndarray:
        """Boolean (N,): the map's digits the model gets wrong."""
        return self.predictions != self.labels


@dataclass(frozen=True)
class Placement:
    """Where a new digit lands on a map (``xy``), and the test-set indices of the ``k`` map digits nearest to it."""

    xy: np.ndarray  # float32 (2,)
    nearest: np.ndarray  # int64 (k,), indices into the test set, nearest first


def _last_linear(network: nn.Module) -> nn.Linear:
    linears = [module for module in network.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(network).__name__} has no nn.Linear layer to take features from")
    return linears[-1]


def _penultimate(network: nn.Module, images, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D) float32, logits (N, C) float32) from one batched pass of ``predict_logits``, with a hook on
    the last linear layer capturing what it reads."""
    if len(as_image_batch(images)) == 0:
        raise ValueError("no images given")
    captured: list[torch.Tensor] = []
    hook = _last_linear(network).register_forward_pre_hook(lambda _module, inputs: captured.append(inputs[0]))
    try:
        logits = predict_logits(network, images, batch_size)
    finally:
        hook.remove()
    features = torch.cat([chunk.float().cpu().flatten(1) for chunk in captured])
    return features.numpy(), logits


def penultimate_features(network: nn.Module, images, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """The input of ``network``'s last ``nn.Linear`` for each image, float32 (N, D): what its classifier reads.

    ``images`` as ``predict_proba`` takes them ((N, 28, 28) or (28, 28), uint8 or float in 0-1, white on black).
    The hook is removed and every submodule's train/eval mode handed back afterwards."""
    return _penultimate(network, images, batch_size)[0]


def _project(feature_map: FeatureMap, features: np.ndarray) -> np.ndarray:
    # In float64: float32 BLAS rounding varies with memory alignment (1e-6 apart for one digit before and after a
    # save), enough to swap two equally near neighbours.
    reduced = feature_map.pca.transform(features.astype(np.float64)) if feature_map.pca is not None else features
    return np.asarray(feature_map.placer.predict(reduced.astype(np.float32)), dtype=np.float32)


def project(feature_map: FeatureMap, network: nn.Module, images) -> np.ndarray:
    """Map coordinates, float32 (N, 2), of new digits ((N, 28, 28) or (28, 28)), in one pass (``place`` adds the
    neighbours for one digit). ``network`` must be the one the map was fitted with."""
    return _project(feature_map, penultimate_features(network, images))


def _placer(reduced: np.ndarray, coordinates: np.ndarray) -> Any:
    from sklearn.neighbors import KNeighborsRegressor

    return KNeighborsRegressor(n_neighbors=N_NEIGHBORS, weights="distance").fit(reduced, coordinates)


@functools.cache
def _umap_with_cached_kernels() -> type:
    """UMAP's class, its numba kernels set to cache their machine code on disk (numba's ``cache=True``, which UMAP
    does not ask for): compiling them took 12-22 s of every new process's first fit; from the cache, 0.1 s."""
    import sys

    from numba.core.dispatcher import Dispatcher
    from umap import UMAP

    for name, module in list(sys.modules.items()):
        if name == "umap" or name.startswith("umap."):
            for value in vars(module).values():
                if isinstance(value, Dispatcher):
                    value.enable_caching()
    return UMAP


def fit_feature_map(network: nn.Module, model_name: str, images, labels, *, count: int = DEFAULT_COUNT,
                    seed: int = 0, weights_id: str | None = None,
                    progress: ProgressCallback | None = None) -> FeatureMap:
    """Map ``count`` of the test ``images`` (a fixed sample, drawn with ``seed``) as ``network`` sees them.

    Features → PCA to at most 50 dimensions → UMAP (2-D, 15 neighbours, min_dist 0.1, ``random_state=seed``), and a
    placer for new digits (``place``). Small enough to ship (``save_feature_map``)."""
    from sklearn.decomposition import PCA  # here: importing umap compiles numba code, seconds the first time
    with needs_extra("evidence", "The map of the digits"):
        umap_class = _umap_with_cached_kernels()

    report = progress or (lambda _stage: None)
    started = time.perf_counter()
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    count = min(count, len(labels))
    if count <= N_NEIGHBORS:
        raise ValueError(f"a map needs more than {N_NEIGHBORS} digits, not {count}")
    indices = np.sort(np.random.default_rng(seed).choice(len(labels), size=count, replace=False)).astype(np.int32)
    report("features")
    features, logits = _penultimate(network, np.asarray(images)[indices], BATCH_SIZE)
    pca = None
    dimensions = min(PCA_DIMENSIONS, count - 1)  # PCA finds at most one direction fewer than it has digits
    if features.shape[1] > dimensions:
        report("pca")
        pca = PCA(n_components=dimensions, random_state=seed)
        reduced = pca.fit_transform(features.astype(np.float64)).astype(np.float32)
    else:
        reduced = features
    report("umap")
    umap_model = umap_class(n_components=2, n_neighbors=N_NEIGHBORS, min_dist=MIN_DIST, random_state=seed,
                      n_jobs=1)  # a seed makes UMAP single-threaded anyway; saying so silences its warning
    coordinates = cast(np.ndarray, umap_model.fit_transform(reduced)).astype(np.float32)  # umap is unannotated
    return FeatureMap(model=model_name, indices=indices, coordinates=coordinates,
                      labels=labels[indices].astype(np.int64), predictions=logits.argmax(1).astype(np.int64),
                      pca=pca, placer=_placer(reduced, coordinates), weights_id=weights_id, seed=seed,
                      fit_time_s=round(time.perf_counter() - started, 2), created=utc_now())


def place(feature_map: FeatureMap, network: nn.Module, image, k: int = 8) -> Placement:
    """Put a new (28, 28) digit on the map: its features through the map's PCA and placer.

    ``nearest`` are the ``k`` map digits nearest to that point in the 2-D map itself (not in feature space): the
    neighbours a visitor sees around the point, as test-set indices."""
    batch = as_image_batch(image)
    if len(batch) != 1:
        raise ValueError(f"place takes one digit, not {len(batch)}")
    xy = project(feature_map, network, batch)[0]
    distances = np.linalg.norm(feature_map.coordinates - xy, axis=1)
    nearest = np.argsort(distances, kind="stable")[:k]
    return Placement(xy=xy, nearest=feature_map.indices[nearest].astype(np.int64))


def map_path(checkpoint_path: str | os.PathLike) -> Path:
    """Where a checkpoint's feature map lives: beside it, ``cnn.pt`` → ``cnn.map.pkl``."""
    path = Path(checkpoint_path)
    return path.with_name(path.name.removesuffix(".pt") + MAP_SUFFIX)


def save_feature_map(path: str | os.PathLike, feature_map: FeatureMap) -> Path:
    """Pickle ``feature_map`` (protocol 5) to ``path`` atomically: a reader sees the old file or the new one."""
    feature_map.format_version = MAP_VERSION
    return atomic_write(path, lambda file: pickle.dump(feature_map, file, protocol=5))


def load_feature_map(path: str | os.PathLike) -> FeatureMap:
    """The FeatureMap saved at ``path``; a ``RecordError`` naming the file when it is missing, unreadable, not a
    feature map or from a newer digit-lab.

    Unpickling runs code: pass only map files of this installation (``map_path`` of a checkpoint under the checkpoint
    or runs folder), which are trusted like the checkpoints beside them."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            loaded = pickle.load(file)  # noqa: S301 - trusted files only, see the module docstring
    except FileNotFoundError:
        raise RecordError(f"{path.name}: no feature map at {path}") from None
    except Exception as error:  # a truncated or foreign file can raise almost anything while unpickling
        raise RecordError(f"{path.name} is not a readable feature map ({type(error).__name__}: {error})") from None
    if not isinstance(loaded, FeatureMap):
        raise RecordError(f"{path.name} holds a {type(loaded).__name__}, not a feature map")
    check_version(getattr(loaded, "format_version", None), MAP_VERSION, path.name)
    if loaded.coordinates.shape != (len(loaded.indices), 2):
        raise RecordError(f"{path.name}: its coordinates do not match its {len(loaded.indices)} digits")
    if loaded.format_version == 1:
        _convert_from_version_1(loaded)
    return loaded


def _convert_from_version_1(feature_map: FeatureMap) -> None:
    """A version 1 map kept the fitted UMAP object (unpickling it imported umap): its training data, the reduced
    features of the map's digits, is what the placer needs."""
    umap_model = vars(feature_map).pop("umap_model")
    feature_map.placer = _placer(np.asarray(umap_model._raw_data, dtype=np.float32), feature_map.coordinates)
    feature_map.format_version = MAP_VERSION
