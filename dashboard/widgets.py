"""Widgets and image helpers the pages share: the leaderboard table, crisp enlarged digits, picked map points."""

from __future__ import annotations

import numpy as np
import streamlit as st

from mnist_models.preprocess import InvalidImageError, load_uploaded_image
from mnist_models.reporting import LeaderboardRow, leaderboard_row, real_input_results, reported_figure
from mnist_models.serving.catalog import CatalogEntry, of_dataset

from .cache import catalog
from .handoff import open_test_image
from .sidebar import chosen_dataset


def leaderboard(entries: list[CatalogEntry]) -> list[LeaderboardRow]:
    """The rows of the entries that have an evaluation, with their real-input accuracy where it was measured."""
    real_input = real_input_results()
    return [leaderboard_row(entry.name, entry.evaluation, entry.title, entry.evidence, real_input)
            for entry in entries if entry.evaluation is not None]


def leaderboard_table(rows: list[LeaderboardRow]) -> None:
    """The leaderboard rows as a formatted table (Overview, and a run beside its shipped model on Train)."""
    st.dataframe(
        [{"model": row.title, "family": row.family, "test accuracy": row.accuracy, "report": reported_figure(row),
          "macro AUC": row.macro_auc, "log loss": row.log_loss, "ECE": row.ece, "robustness": row.robustness,
          "real input": row.real_input, "parameters": row.parameters,
          "size (MB)": row.size_mb, "latency (ms)": row.latency_ms, "epochs": row.epochs,
          "training (s)": row.train_time_s} for row in rows],
        hide_index=True,
        column_config={
            "test accuracy": st.column_config.NumberColumn(format="percent"),
            "family": st.column_config.TextColumn(help="How the architecture reads a digit"),
            "report": st.column_config.TextColumn(
                "report's figure",
                help="Test accuracy the analysis report gave (its epochs in brackets); the architectures the reports "
                     "only suggested as next steps were never measured there"),
            "macro AUC": st.column_config.NumberColumn(format="%.5f"),
            "log loss": st.column_config.NumberColumn(format="%.4f"),
            "ECE": st.column_config.NumberColumn("calibration error", format="percent"),
            "robustness": st.column_config.NumberColumn(
                format="%.3f", help="Area under the accuracy curves of seven corruptions relative to clean accuracy "
                                    "(1: no loss); see the Evidence page"),
            "real input": st.column_config.NumberColumn(
                format="percent", help="Right answers on digits nobody here made (other writers, close-ups, scans, "
                                       "low resolution; refusals count as wrong); see the Evidence page"),
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


def prediction_gallery(images, labels, indices, entries: list[CatalogEntry], heading: str, key: str) -> None:
    """Test images with every model's saved answer (and its confidence) under each, and a way to open one of them in
    Explain."""
    st.markdown(heading)
    if len(indices) == 0:
        st.write("No such images.")
        return
    saved = [(entry.name, entry.evaluation.predictions, entry.evaluation.confidence) for entry in entries
             if entry.evaluation is not None and entry.evaluation.predictions is not None]
    if len(saved) < len(entries):
        raise ValueError("the gallery shows the models' saved answers: every model needs its evaluation's predictions")
    answers = [" · ".join(f"{name} {predictions[i]}" + (f" ({confidence[i]:.0%})" if confidence is not None else "")
                          for name, predictions, confidence in saved) for i in indices]
    st.image([enlarge(images[i].numpy(), 84) for i in indices],
             caption=[f"#{i} true {labels[i]}: {answer}" for i, answer in zip(indices, answers, strict=True)])
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    picked = left.selectbox("Why did they answer that? Pick an image", [int(i) for i in indices],
                            format_func=lambda i: f"#{i} (true {labels[i]})", key=f"{key}_explain_pick")
    if right.button("Open in Explain", icon=":material/psychology:", key=f"{key}_explain"):
        open_test_image(picked)


def picked_on_map(event, images, labels, shown: int = 40, classes: list[str] | None = None) -> list[int]:
    """The images picked on a digit map (``figures.digit_map_figure``), shown under it; their indices."""
    picked = selected_images(event["selection"]["points"]) if event else []
    if picked:
        st.markdown(f"**{len(picked)} image{'s' if len(picked) != 1 else ''} picked on the map**"
                    f"{f' (first {shown})' if len(picked) > shown else ''}")
        st.image([enlarge(images[i].numpy(), 84) for i in picked[:shown]],
                 caption=[f"#{i} · {classes[int(labels[i])] if classes else int(labels[i])}" for i in picked[:shown]])
    return picked


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
    and, where the page shows evaluations (``needs_evaluation``), the ones whose evaluation cannot be read. Only the
    chosen dataset's: the others are not shown anyway."""
    for entry in of_dataset(catalog(), chosen_dataset()):
        if not entry.available:
            st.warning(f"**{entry.title}** is not shown: {entry.error}", icon=":material/error:")
        elif needs_evaluation and entry.evaluation_error:
            st.warning(f"**{entry.title}** can be used, but its evaluation cannot be shown: {entry.evaluation_error}",
                       icon=":material/error:")


def uploaded_picture(upload) -> np.ndarray | None:
    """The picture in an uploaded file or camera photo, decoded within the server's limits, with a choice of frame
    for an animation and what decoding did to it; None, with a clear error, when the file is not a usable picture."""
    frame_key = f"frame_{upload.file_id}"  # a new file starts at its first frame
    try:
        decoded = load_uploaded_image(upload.getvalue(), st.session_state.get(frame_key, 1) - 1)
    except InvalidImageError as error:
        st.error(str(error), icon=":material/broken_image:")
        return None
    if decoded.frame_count > 1:
        st.number_input(f"Frame to read (the file has {decoded.frame_count})", 1, decoded.frame_count, key=frame_key)
    for note in decoded.notes:
        st.caption(note)
    return decoded.image
