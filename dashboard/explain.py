"""The Explain page's cached work: each model's explanation of a digit, computed once per (model, digit, setting)
and shared by reruns and visitors: a slider moved back, or a second visitor explaining the same test image, costs
nothing."""

from __future__ import annotations

import numpy as np
import streamlit as st
from torch import nn

from mnist_models import explain, robustness
from mnist_models.serving.catalog import catalog_signature

from .cache import catalog

CACHE_ENTRIES = 512
METHOD_TITLES = {"integrated_gradients": f"Integrated Gradients ({explain.IG_STEPS} steps)", "saliency": "Saliency",
                 "gradcam": "Grad-CAM (last features)"}


def _network(name: str) -> nn.Module:
    network = next(entry.network for entry in catalog() if entry.name == name)
    if network is None:
        raise ValueError(f"{name} could not be loaded, so it cannot be explained")
    return network


def version() -> tuple:
    """Changes whenever a checkpoint or run file does: part of every cache key below, so a retrained model's
    explanations are computed afresh."""
    return catalog_signature()


# Each cached function takes the digit as bytes (hashed quickly) and the model by name and version (a network object
# cannot be hashed by value); "_" before a name would skip hashing, which none of these may do.
def _digit(image: bytes) -> np.ndarray:
    return np.frombuffer(image, dtype=np.uint8).reshape(28, 28).copy()  # writable, as torch wants it


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def attributions(name: str, model_version: tuple, image: bytes, target: int) -> dict[str, np.ndarray | str]:
    """Every attribution method's (28, 28) map for ``target``, or, where a method does not apply, the reason."""
    network, digit = _network(name), _digit(image)
    maps: dict[str, np.ndarray | str] = {}
    for method in explain.ATTRIBUTION_METHODS:
        try:
            maps[method] = explain.attribute(network, digit, method, target)
        except explain.NoConvolutionError as reason:
            maps[method] = str(reason)
    return maps


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def step_probabilities(name: str, model_version: tuple, image: bytes) -> np.ndarray:
    return explain.step_probabilities(_network(name), _digit(image))


@st.cache_data(max_entries=64, show_spinner=False)
def feature_maps(name: str, model_version: tuple, image: bytes) -> dict[str, np.ndarray]:
    return explain.feature_maps(_network(name), _digit(image))


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def strongest_units(name: str, model_version: tuple, image: bytes, count: int) -> list[explain.Unit]:
    return explain.strongest_first_units(_network(name), _digit(image), count)


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def attacked(name: str, model_version: tuple, image: bytes, epsilon: float, method: str, target: int | None
             ) -> np.ndarray:
    """The digit after a white-box attack on this model (each model is attacked with its own gradients)."""
    return robustness.adversarial(_network(name), _digit(image), epsilon, method, target)


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def flipping_epsilon(name: str, model_version: tuple, image: bytes, method: str, target: int | None
                     ) -> float | None:
    """The smallest ε that changes this model's answer (or reaches ``target``), None within the range searched."""
    return robustness.smallest_flipping_epsilon(_network(name), _digit(image), method, target)
