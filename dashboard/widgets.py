"""Widgets and image helpers the pages share: the leaderboard table, crisp enlarged digits, picked map points."""

from __future__ import annotations

import numpy as np
import streamlit as st

from mnist_models.reporting import LeaderboardRow, leaderboard_row
from mnist_models.store.catalog import CatalogEntry

from .cache import catalog


def leaderboard(entries: list[CatalogEntry]) -> list[LeaderboardRow]:
    """The rows of the entries that have an evaluation."""
    return [leaderboard_row(entry.name, entry.evaluation, entry.title) for entry in entries
            if entry.evaluation is not None]


def leaderboard_table(rows: list[LeaderboardRow]) -> None:
    """The leaderboard rows as a formatted table (Overview, and a run beside its shipped model on Train)."""
    st.dataframe(
        [{"model": row.title, "test accuracy": row.accuracy, "report": row.report_accuracy,
          "macro AUC": row.macro_auc, "log loss": row.log_loss, "ECE": row.ece, "parameters": row.parameters,
          "size (MB)": row.size_mb, "latency (ms)": row.latency_ms, "epochs": row.epochs,
          "training (s)": row.train_time_s} for row in rows],
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


def selected_images(points: list[dict]) -> list[int]:
    """Image indices of the points picked on a map whose customdata carries the index, in the order picked, without
    repeats. The browser sends a point's customdata row as a scalar, a list, or (for plotly's typed arrays) a dict
    keyed by column: {'0': 43059}."""
    indices = []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, dict):
            data = data.get("0")
        elif isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if data is not None:
            indices.append(int(data))
    return list(dict.fromkeys(indices))


def enlarge(image: np.ndarray, size: int = 140) -> np.ndarray:
    """Pad to a black square, then enlarge (nearest neighbour) to about ``size`` px: crisp pixels, not blur, and
    thin crops (a "1") keep their shape instead of being stretched by the page."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
    height, width = array.shape[:2]
    side = max(height, width)
    padding = [((side - height) // 2, side - height - (side - height) // 2),
               ((side - width) // 2, side - width - (side - width) // 2)] + [(0, 0)] * (array.ndim - 2)
    array = np.pad(array, padding)
    factor = max(1, size // max(array.shape[:2]))
    return array.repeat(factor, axis=0).repeat(factor, axis=1)


def model_problems(needs_evaluation: bool = False) -> None:
    """Say which models a page leaves out and why, so none vanishes without a word: the ones that cannot be loaded
    and, where the page shows evaluations (``needs_evaluation``), the ones whose evaluation cannot be read."""
    for entry in catalog():
        if not entry.available:
            st.warning(f"**{entry.title}** is not shown: {entry.error}", icon=":material/error:")
        elif needs_evaluation and entry.evaluation_error:
            st.warning(f"**{entry.title}** can be used, but its evaluation cannot be shown: {entry.evaluation_error}",
                       icon=":material/error:")
