"""The sidebar on every page: which models are shown, and where each checkpoint came from."""

from __future__ import annotations

import streamlit as st

from mnist_models.paths import DATA_DIR_ENV, resolve_data_root
from mnist_models.store.catalog import CatalogEntry

from .cache import catalog
from .replica import replica_name
from .text import provenance

SELECTED_MODELS_KEY = "selected_models"
CALIBRATED_KEY = "calibrated_probabilities"
KNOWN_MODELS_KEY = "known_models"  # what the sidebar offered last run, to spot runs saved since


def selected_entries() -> list[CatalogEntry]:
    """The available models chosen in the sidebar (all of them when nothing was chosen yet)."""
    entries = [entry for entry in catalog() if entry.available]
    chosen = st.session_state.get(SELECTED_MODELS_KEY)
    return entries if chosen is None else [entry for entry in entries if entry.name in chosen]


def calibrated() -> bool:
    """Whether the visitor asked for temperature-scaled probabilities (the sidebar's switch)."""
    return bool(st.session_state.get(CALIBRATED_KEY, False))


def _sync_selection(available: list[str]) -> list[str]:
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
    return selected


def render_sidebar() -> None:
    """Model choice and each checkpoint's provenance, on every page."""
    entries = catalog()
    available = [entry.name for entry in entries if entry.available]
    titles = {entry.name: entry.title for entry in entries}
    selected = _sync_selection(available)
    with st.sidebar:
        # The default repeats the selection on purpose: a browser that rebuilds the widget from its description (a
        # page switched while the first run was still drawing) would otherwise start from an empty default and send
        # that back, wiping the visitor's selection on the next click.
        st.multiselect("Models shown", available, default=selected, key=SELECTED_MODELS_KEY, format_func=titles.get,
                       help="Every page shows only these models. Runs trained on the Train page join the list.")
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
