"""Cached access to models and data: loaded once per server process (or once per file change), shared by sessions."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from mnist_models.data import DatasetMissingError, get_dataset, load_dataset
from mnist_models.exploration import class_counts, mean_images, pca_map, pixel_histogram
from mnist_models.paths import DATA_DIR_ENV, resolve_data_root
from mnist_models.serving.catalog import CatalogEntry, catalog_signature, load_catalog

INFERENCE_THREADS = 1
"""torch threads in the server process. One image gains nothing from splitting a layer across cores, while several
threads per call, with visitors' sessions and a training child competing for the same 2 cores, spin-wait on each
other: measured here under load, the six models' answer to one drawing took 2,800 ms with 2 threads and 18 ms with
1. Training runs in its own process with its own setting."""


@st.cache_resource(show_spinner="Loading the models…", max_entries=2)
def _catalog(signature: tuple) -> list[CatalogEntry]:
    torch.set_num_threads(INFERENCE_THREADS)
    return load_catalog()


def catalog() -> list[CatalogEntry]:
    """The shipped models and saved runs, reloaded only when a checkpoint or run file changes."""
    return _catalog(catalog_signature())


@st.cache_resource(show_spinner="Reading the dataset…")
def _split(split: str, root: str, dataset: str = "mnist") -> tuple[torch.Tensor, torch.Tensor]:
    return load_dataset(dataset, split, root, download=False)


def data_root() -> str:
    """The dataset folder in use, resolved: the cache key of everything computed from the data."""
    return str(resolve_data_root().resolve())


def dataset_split(split: str, dataset: str = "mnist") -> tuple[torch.Tensor, torch.Tensor] | None:
    """A split of ``dataset`` (MNIST's by default), or None after telling the person what is missing and how to
    provide it."""
    try:
        return _split(split, data_root(), dataset)
    except DatasetMissingError as error:
        if dataset != "mnist":
            st.warning(f"**{get_dataset(dataset).title} is not available, so this page cannot show it.** {error}",
                       icon=":material/dataset:")
            return None
        st.warning(f"**The MNIST dataset is not available, so this page cannot show it.** {error}\n\n"
                   f"Set `{DATA_DIR_ENV}` before starting the dashboard, e.g. "
                   f"`{DATA_DIR_ENV}=../shared/data ./run.sh`, or run `digit-lab train` once online "
                   f"to download it into `./data`.", icon=":material/dataset:")
        return None


@st.cache_data(show_spinner="Computing dataset statistics…")
def dataset_statistics(root: str, dataset: str = "mnist") -> dict[str, np.ndarray]:
    train_images, train_labels = _split("train", root, dataset)
    test_images, test_labels = _split("test", root, dataset)
    return {"train_counts": class_counts(train_labels), "test_counts": class_counts(test_labels),
            "means": mean_images(train_images, train_labels), "histogram": pixel_histogram(train_images)}


PCA_POINTS = 2000
"""How many training images the Dataset page's map shows at first."""


@st.cache_data(show_spinner="Projecting images with PCA…")
def pca(root: str, count: int, seed: int, dataset: str = "mnist") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, labels = _split("train", root, dataset)
    return pca_map(images, labels, count, seed)


@st.cache_resource(max_entries=8, show_spinner="Loading the map of the digits…")
def _feature_map(path: str, stamp: int):
    from mnist_models.feature_space import load_feature_map

    return load_feature_map(path)


def feature_map(entry: CatalogEntry):
    """The saved map of ``entry``'s features (FeatureMap), None when none was computed; a RecordError when the file
    cannot be used. Reloaded when the file changes."""
    from mnist_models.feature_space import map_path

    path = map_path(entry.checkpoint)
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    return _feature_map(str(path), stamp)
