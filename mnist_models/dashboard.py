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
KNOWN_MODELS_KEY = "known_models"  # what the sidebar offered last run, to spot runs saved since


@st.cache_resource(show_spinner="Loading the models…", max_entries=2)
def _catalog(signature: tuple) -> list[CatalogEntry]:
    return load_catalog()


def catalog() -> list[CatalogEntry]:
    """The shipped models and saved runs, reloaded only when a checkpoint or run file changes."""
    return _catalog(catalog_signature())


def selected_entries() -> list[CatalogEntry]:
    """The available models chosen in the sidebar (all of them when nothing was chosen yet)."""
    entries = [entry for entry in catalog() if entry.available]
    chosen = st.session_state.get(SELECTED_MODELS_KEY)
    return entries if chosen is None else [entry for entry in entries if entry.name in chosen]


def leaderboard(entries: list[CatalogEntry]) -> list[dict]:
    return [leaderboard_row(entry.name, entry.results, entry.title) for entry in entries if entry.results is not None]


def leaderboard_table(rows: list[dict]) -> None:
    """The leaderboard rows as a formatted table (Overview, and a run beside its shipped model on Train)."""
    st.dataframe(
        [{"model": row["title"], "test accuracy": row["accuracy"], "report": row["report_accuracy"],
          "macro AUC": row["macro_auc"], "log loss": row["log_loss"], "ECE": row["ece"],
          "parameters": row["parameters"], "size (MB)": row["size_mb"], "latency (ms)": row["latency_ms"],
          "epochs": row["epochs"], "training (s)": row["train_time_s"]} for row in rows],
        hide_index=True,
        column_config={
            "test accuracy": st.column_config.NumberColumn(format="percent"),
            "report": st.column_config.NumberColumn("report's figure", format="percent"),
            "macro AUC": st.column_config.NumberColumn(format="%.5f"),
            "log loss": st.column_config.NumberColumn(format="%.4f"),
            "ECE": st.column_config.NumberColumn("calibration error", format="percent"),
            "parameters": st.column_config.NumberColumn(format="localized"),
            "size (MB)": st.column_config.NumberColumn(format="%.2f"),
            "latency (ms)": st.column_config.NumberColumn("latency, 1 image (ms)", format="%.2f"),
            "training (s)": st.column_config.NumberColumn(format="%.0f"),
        },
    )


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


def _sync_selection(available: list[str]) -> None:
    """Before the sidebar's multiselect is drawn: select models and runs that appeared since the last run (a run
    just trained shows up everywhere), and drop ones that are gone (a deleted run)."""
    selected = st.session_state.get(SELECTED_MODELS_KEY)
    known = st.session_state.get(KNOWN_MODELS_KEY, [])
    if selected is None:
        selected = available
    else:
        selected = [name for name in selected if name in available] + [
            name for name in available if name not in known and name not in selected]
    if st.session_state.get(SELECTED_MODELS_KEY) != selected:  # writing a widget's key resends it to the browser
        st.session_state[SELECTED_MODELS_KEY] = selected
    st.session_state[KNOWN_MODELS_KEY] = available


def render_sidebar() -> None:
    """Model choice and each checkpoint's provenance, on every page."""
    entries = catalog()
    available = [entry.name for entry in entries if entry.available]
    titles = {entry.name: entry.title for entry in entries}
    _sync_selection(available)
    with st.sidebar:
        st.multiselect("Models shown", available, key=SELECTED_MODELS_KEY, format_func=titles.get,
                       help="Every page shows only these models. Runs trained on the Train page join the list.")
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
