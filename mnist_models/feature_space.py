"""A map of the digits as a model sees them: each test digit placed by the model's penultimate features, in 2-D.

A classifier's last layer only draws lines through the space its previous layers built. Projected to two dimensions
with UMAP, that space shows a stakeholder what the model has learnt: ten islands, one per digit, the closer two
islands the more alike the model finds those digits, and the test digits it gets wrong on the shore between them
(a 4 sitting among the 9s). A new digit drawn by a visitor is placed on the same map (``place``), with the test
digits nearest to it, so "why did it say 9?" can be answered with "because to the model it looks like these".

``fit_feature_map`` samples ``count`` test digits (3,000 by default), reduces their features to at most 50
dimensions with PCA and fits UMAP on those; ``save_feature_map`` keeps the result beside the checkpoint
(``cnn.pt`` → ``cnn.map.pkl``).

The files are pickles, because the fitted PCA and UMAP objects are what place new digits, and pickle runs code when
it loads. They are trusted exactly like the checkpoints beside them: the shipped ones are written by this project, a
run's by the Train page of this installation. ``load_feature_map`` reads only the path its caller passes, and callers
pass paths under the checkpoint or runs folders (``map_path`` of a checkpoint), never a file a visitor uploaded.
"""

from __future__ import annotations

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
MAP_VERSION = 1
DEFAULT_COUNT = 3000
"""Test digits on a map: enough for every digit's island and its shores, few enough that UMAP fits in seconds and
keeps its exact (brute-force) neighbour search below its 4,096-point threshold, and that the file stays small."""
PCA_DIMENSIONS = 50
"""UMAP keeps its training data to place new points; 50 principal components keep it small and its distances
meaningful (the CNN's 128 features, MobileNet's 1,024)."""
N_NEIGHBORS = 15
MIN_DIST = 0.1
# Fitted state that UMAP.transform never reads (it recomputes a new point's neighbours against _raw_data), dropped
# before saving: the fuzzy graph and the training points' neighbour lists are most of a fitted model's size.
_UNNEEDED_UMAP_ATTRIBUTES = ("graph_", "graph_dists_", "_knn_indices", "_knn_dists", "_sigmas", "_rhos")

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
    umap_model: Any  # umap.UMAP, fitted
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
    # save), and UMAP's transform, an optimisation, moved such a point by 0.1 map units (the map spans ~30).
    reduced = feature_map.pca.transform(features.astype(np.float64)) if feature_map.pca is not None else features
    return np.asarray(feature_map.umap_model.transform(reduced.astype(np.float32)), dtype=np.float32)


def project(feature_map: FeatureMap, network: nn.Module, images) -> np.ndarray:
    """Map coordinates, float32 (N, 2), of new digits ((N, 28, 28) or (28, 28)), in one pass (``place`` adds the
    neighbours for one digit). ``network`` must be the one the map was fitted with."""
    return _project(feature_map, penultimate_features(network, images))


def _drop_unneeded(umap_model: Any) -> None:
    for name in _UNNEEDED_UMAP_ATTRIBUTES:
        if hasattr(umap_model, name):
            try:
                delattr(umap_model, name)
            except AttributeError:  # a property
                pass


def fit_feature_map(network: nn.Module, model_name: str, images, labels, *, count: int = DEFAULT_COUNT,
                    seed: int = 0, weights_id: str | None = None,
                    progress: ProgressCallback | None = None) -> FeatureMap:
    """Map ``count`` of the test ``images`` (a fixed sample, drawn with ``seed``) as ``network`` sees them.

    Features → PCA to at most 50 dimensions → UMAP (2-D, 15 neighbours, min_dist 0.1, ``random_state=seed``). The
    result places new digits (``place``) and is small enough to ship (``save_feature_map``)."""
    from sklearn.decomposition import PCA  # here: importing umap compiles numba code, seconds the first time
    with needs_extra("evidence", "The map of the digits"):
        from umap import UMAP

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
    umap_model = UMAP(n_components=2, n_neighbors=N_NEIGHBORS, min_dist=MIN_DIST, random_state=seed,
                      n_jobs=1)  # a seed makes UMAP single-threaded anyway; saying so silences its warning
    coordinates = cast(np.ndarray, umap_model.fit_transform(reduced)).astype(np.float32)  # umap is unannotated
    _drop_unneeded(umap_model)
    return FeatureMap(model=model_name, indices=indices, coordinates=coordinates,
                      labels=labels[indices].astype(np.int64), predictions=logits.argmax(1).astype(np.int64),
                      pca=pca, umap_model=umap_model, weights_id=weights_id, seed=seed,
                      fit_time_s=round(time.perf_counter() - started, 2), created=utc_now())


def place(feature_map: FeatureMap, network: nn.Module, image, k: int = 8) -> Placement:
    """Put a new (28, 28) digit on the map: its features through the map's PCA and UMAP ``transform``.

    ``nearest`` are the ``k`` map digits nearest to that point in the 2-D map itself (not in feature space): the
    neighbours a visitor sees around the point, as test-set indices. The first call compiles UMAP's code (seconds):
    ``warm_up`` pays that in advance. After it, a placement took 6-18 ms on a busy 2-core machine, but 180 ms in
    runs where numba's OpenMP threads and torch's spun against each other for the cores; ``OMP_WAIT_POLICY=passive``
    or ``NUMBA_NUM_THREADS=1`` in the environment brought those back to 7 ms."""
    batch = as_image_batch(image)
    if len(batch) != 1:
        raise ValueError(f"place takes one digit, not {len(batch)}")
    xy = project(feature_map, network, batch)[0]
    distances = np.linalg.norm(feature_map.coordinates - xy, axis=1)
    nearest = np.argsort(distances, kind="stable")[:k]
    return Placement(xy=xy, nearest=feature_map.indices[nearest].astype(np.int64))


def warm_up(feature_map: FeatureMap) -> None:
    """Run one UMAP ``transform`` (on a training point), so the numba compilation it triggers the first time in a
    process happens now, before a visitor's first ``place``."""
    raw = feature_map.umap_model._raw_data
    feature_map.umap_model.transform(np.asarray(raw[:1], dtype=np.float32))


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
    return loaded
