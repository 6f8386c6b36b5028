"""Before the server takes its first visitor: import what the pages use and fill the caches they read first.

Without it the first visit of each page after a start paid for imports (Plotly Express, pandas' Styler,
scikit-learn: seconds on 2 cores), for reading the checkpoints and the dataset, for the PCA map, and for each model's
first inference (oneDNN prepares its kernels on the first call), the first training for starting the fork server
its process comes from, and the Evidence page's map for reading its file (seconds each).
Streamlit's caches are process-wide, so filling them here, outside any session, serves every later session.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

# Heavy modules the pages import only when they first draw something.
PAGE_MODULES = ("plotly.express", "plotly.graph_objects", "pandas.io.formats.style", "sklearn.decomposition",
                "captum.attr")


@contextmanager
def _without_bare_mode_warnings() -> Iterator[None]:
    """Streamlit warns on every cached call made outside a session ('missing ScriptRunContext', 'No runtime
    found'): expected here, and nothing else is running yet."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def warm_up() -> dict[str, float]:
    """Seconds spent on each step; a step that fails (no dataset, say) is skipped, its page handles that itself."""
    from dashboard import cache
    from dashboard.replica import training_place
    from mnist_models.data import dataset_available
    from mnist_models.jobs.worker import start_process_server
    from mnist_models.serving.catalog import predict_with_each

    steps: dict[str, float] = {}

    def step(name: str, work) -> None:
        start = time.perf_counter()
        try:
            work()
        except Exception as error:  # noqa: BLE001 - a page meets the same problem and explains it to its visitor
            print(f"digit-lab: warm-up step {name!r} skipped: {error}", flush=True)
            return
        steps[name] = time.perf_counter() - start

    with _without_bare_mode_warnings():
        step("imports", lambda: [importlib.import_module(name) for name in PAGE_MODULES])
        step("models", lambda: predict_with_each(cache.catalog(), np.zeros((28, 28), np.uint8)))
        if training_place().here:  # a replica that does not train never starts a training process
            step("training processes", start_process_server)
        step("digit map", lambda: next((found for entry in cache.catalog()
                                        if entry.available and (found := cache.feature_map(entry)) is not None), None))
        root = cache.data_root()
        if dataset_available(root):
            step("dataset", lambda: cache.dataset_statistics(root))
            step("pca map", lambda: cache.pca(root, cache.PCA_POINTS, 0))
    return steps
