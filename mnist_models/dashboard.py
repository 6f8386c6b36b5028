"""Streamlit glue shared by the pages: cached access to models and data, the sidebar, and common messages.

Only caching and widgets live here; the work itself is done by the rest of the package.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from .catalog import CatalogEntry, catalog_signature, load_catalog
from .data import DatasetMissingError, load_mnist
from .exploration import class_counts, mean_images, pca_map, pixel_histogram
from .paths import DATA_DIR_ENV, resolve_data_root
from .reporting import leaderboard_row

SELECTED_MODELS_KEY = "selected_models"


@st.cache_resource(show_spinner="Loading the models…")
def _catalog(signature: tuple) -> list[CatalogEntry]:
    return load_catalog()


def catalog() -> list[CatalogEntry]:
    """All registered models, reloaded only when a checkpoint file changes."""
    return _catalog(catalog_signature())


def selected_entries() -> list[CatalogEntry]:
    """The available models chosen in the sidebar (all of them when nothing was chosen yet)."""
    entries = [entry for entry in catalog() if entry.available]
    chosen = st.session_state.get(SELECTED_MODELS_KEY)
    return entries if chosen is None else [entry for entry in entries if entry.name in chosen]


def leaderboard(entries: list[CatalogEntry]) -> list[dict]:
    return [leaderboard_row(entry.name, entry.results) for entry in entries if entry.results is not None]


@st.cache_resource(show_spinner="Reading MNIST…")
def _split(split: str, root: str) -> tuple[torch.Tensor, torch.Tensor]:
    return load_mnist(split, root, download=False)


def mnist(split: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A split, or None after telling the person what is missing and how to provide it."""
    root = str(resolve_data_root().resolve())
    try:
        return _split(split, root)
    except DatasetMissingError as error:
        st.warning(f"**The MNIST dataset is not available, so this page cannot show it.** {error}\n\n"
                   f"Set `{DATA_DIR_ENV}` before starting the dashboard, e.g. "
                   f"`{DATA_DIR_ENV}=../shared/data ./run.sh`, or run `python -m mnist_models train` once online "
                   f"to download it into `./data`.", icon=":material/dataset:")
        return None


@st.cache_data(show_spinner="Computing dataset statistics…")
def dataset_statistics(root: str) -> dict[str, np.ndarray]:
    train_images, train_labels = _split("train", root)
    test_images, test_labels = _split("test", root)
    return {"train_counts": class_counts(train_labels), "test_counts": class_counts(test_labels),
            "means": mean_images(train_images, train_labels), "histogram": pixel_histogram(train_images)}


@st.cache_data(show_spinner="Projecting images with PCA…")
def pca(root: str, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, labels = _split("train", root)
    return pca_map(images, labels, count, seed)


def render_sidebar() -> None:
    """Model choice and each checkpoint's provenance, on every page."""
    entries = catalog()
    available = [entry.name for entry in entries if entry.available]
    titles = {entry.name: entry.title for entry in entries}
    with st.sidebar:
        st.multiselect("Models shown", available, default=available, key=SELECTED_MODELS_KEY,
                       format_func=titles.get, help="Every page shows only these models.")
        with st.expander("Checkpoints", icon=":material/inventory_2:"):
            for entry in entries:
                if not entry.available:
                    st.error(f"**{entry.title}** unavailable: {entry.error}", icon=":material/error:")
                    continue
                meta = entry.meta
                accuracy = (f"{entry.results['metrics']['accuracy']:.2%}" if entry.results else "not evaluated")
                st.markdown(
                    f"**{entry.title}** · `{entry.checkpoint.name}`  \n"
                    f"test accuracy {accuracy} · {meta['epochs_completed']} epochs in {meta['train_time_s']:.0f} s "
                    f"on {meta['device']}  \n"
                    f"init: {meta['initialisation']} · trained {meta['created'][:10]} · "
                    f"torch {meta['versions']['torch']}")
        root = resolve_data_root()
        st.caption(f"Dataset folder: `{root}` (set `{DATA_DIR_ENV}` to change it)")
