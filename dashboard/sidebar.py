"""The sidebar on every page: which dataset's models are shown (models of different datasets are never compared),
which of them, and where each checkpoint came from."""

from __future__ import annotations

import streamlit as st

from mnist_models.data import DATASETS
from mnist_models.paths import DATA_DIR_ENV, resolve_data_root
from mnist_models.serving.catalog import CatalogEntry, of_dataset

from .cache import catalog
from .replica import replica_name
from .text import provenance

SELECTED_MODELS_KEY = "selected_models"
CALIBRATED_KEY = "calibrated_probabilities"
KNOWN_MODELS_KEY = "known_models"  # what the sidebar offered last run, to spot runs saved since
DATASET_KEY = "dataset"
SELECTIONS_KEY = "selections_by_dataset"  # each dataset's model choice, restored when the visitor switches back
SHOWN_DATASET_KEY = "shown_dataset"  # the dataset whose models the multiselect held last run


def chosen_dataset() -> str:
    """The dataset chosen in the sidebar (its data-layer name): pages show its images and only its models."""
    return st.session_state.get(DATASET_KEY) or "mnist"


def selected_entries() -> list[CatalogEntry]:
    """The available models of the chosen dataset chosen in the sidebar (all of them when nothing was chosen yet)."""
    entries = [entry for entry in of_dataset(catalog(), chosen_dataset()) if entry.available]
    chosen = st.session_state.get(SELECTED_MODELS_KEY)
    return entries if chosen is None else [entry for entry in entries if entry.name in chosen]


def calibrated() -> bool:
    """Whether the visitor asked for temperature-scaled probabilities (the sidebar's switch)."""
    return bool(st.session_state.get(CALIBRATED_KEY, False))


def _sync_selection(dataset: str, available: list[str], every: list[str]) -> list[str]:
    """Before the sidebar's multiselect is drawn: hold the chosen dataset's selection (the one made when it was last
    shown, after a switch), select models and runs that appeared since the last run (a run just trained shows up
    everywhere), and drop ones that are gone (a deleted run). ``every``: the available models of all datasets."""
    selections = st.session_state.setdefault(SELECTIONS_KEY, {})
    switched = st.session_state.get(SHOWN_DATASET_KEY, dataset) != dataset
    selected = selections.get(dataset) if switched else st.session_state.get(SELECTED_MODELS_KEY)
    known = st.session_state.get(KNOWN_MODELS_KEY, [])
    if selected is None:
        selected = available
    else:
        selected = [name for name in selected if name in available] + [
            name for name in available if name not in known and name not in selected]
    if st.session_state.get(SELECTED_MODELS_KEY) != selected:  # writing a widget's key resends it to the browser
        st.session_state[SELECTED_MODELS_KEY] = selected
    st.session_state[KNOWN_MODELS_KEY] = every
    st.session_state[SHOWN_DATASET_KEY] = dataset
    selections[dataset] = selected
    return selected


def render_sidebar() -> None:
    """Dataset and model choice and each checkpoint's provenance, on every page."""
    entries = catalog()
    with st.sidebar:
        st.radio("Dataset", list(DATASETS), key=DATASET_KEY, format_func=lambda name: DATASETS[name].title,
                 horizontal=True, help="Which images the pages show, and whose models: a model is only compared with "
                                       "models trained on the same dataset.")
    dataset = chosen_dataset()
    available = [entry.name for entry in of_dataset(entries, dataset) if entry.available]
    titles = {entry.name: entry.title for entry in entries}
    selected = _sync_selection(dataset, available, [entry.name for entry in entries if entry.available])
    with st.sidebar:
        # The default repeats the selection on purpose: a browser that rebuilds the widget from its description (a
        # page switched while the first run was still drawing) would otherwise start from an empty default and send
        # that back, wiping the visitor's selection on the next click.
        st.multiselect("Models shown", available, default=selected, key=SELECTED_MODELS_KEY,
                       format_func=titles.__getitem__,
                       help=f"Every page shows only these models, all trained on {DATASETS[dataset].title}. Runs "
                            f"trained on the Train page join the list.")
        st.toggle("Calibrated probabilities", key=CALIBRATED_KEY,
                  help="Divide each model's logits by the temperature fitted on its validation digits (see Evidence "
                       "→ Calibration), so a stated 90% is right about 90% of the time. The answers do not change.")
        with st.expander("Checkpoints", icon=":material/inventory_2:"):
            for entry in entries:
                if not entry.available:
                    st.error(f"**{entry.title}** unavailable: {entry.error}", icon=":material/error:")
                    continue
                st.markdown(f"**{entry.title}** · `{entry.checkpoint.name}`  \n{provenance(entry)}")
        st.caption(f"Dataset folder: `{resolve_data_root()}` (set `{DATA_DIR_ENV}` to change it)")
        if replica := replica_name():  # one of several servers behind a proxy (scripts/serve_replicas.sh)
            st.caption(f"Served by replica `{replica}`", help="This site runs several dashboard processes behind a "
                       "proxy; each visitor stays with one. Checkpoints and saved runs are shared.")
