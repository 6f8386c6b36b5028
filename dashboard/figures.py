"""Plotly figure builders for the dashboard: pure functions of measured data, testable without Streamlit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mnist_models.models.architectures import Reading
from mnist_models.reporting import LeaderboardRow
from mnist_models.store.evidence_records import Calibration, RobustnessCurve, Selective
from mnist_models.store.records import Evaluation
from mnist_models.training.loop import Progress

DIGITS = [str(d) for d in range(10)]
PALETTE = px.colors.qualitative.Plotly


def _compact(fig: go.Figure, height: int, title: str | None = None) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10), title=title)
    return fig


def leaderboard_figure(rows: list[LeaderboardRow]) -> go.Figure:
    """Measured test accuracy per model beside the figure its report quoted."""
    titles = [row.title for row in rows]
    fig = go.Figure([
        go.Bar(name="measured here", x=titles, y=[100 * row.accuracy for row in rows],
               text=[f"{100 * row.accuracy:.2f}%" for row in rows], textposition="outside"),
        go.Bar(name="report", x=titles, y=[None if row.report_accuracy is None else 100 * row.report_accuracy
                                           for row in rows],
               text=["suggested" if row.report_accuracy is None else f"{100 * row.report_accuracy:.1f}%"
                     for row in rows], textposition="outside"),
    ])
    reported = [row.report_accuracy for row in rows if row.report_accuracy is not None]
    low = min(reported + [row.accuracy for row in rows], default=0.9)
    fig.update_yaxes(title="test accuracy (%)", range=[100 * low - 1, 100.2])
    return _compact(fig.update_layout(barmode="group"), 360)


def class_distribution_figure(train_counts: np.ndarray, test_counts: np.ndarray, classes: list[str] = DIGITS
                              ) -> go.Figure:
    """Images per class (digit) in each split, with counts, and the share a perfectly balanced split would have."""
    fig = go.Figure()
    for split, counts in (("train", train_counts), ("test", test_counts)):
        share = 100 * counts / counts.sum()
        fig.add_bar(name=f"{split} ({counts.sum():,})", x=list(classes), y=share, text=[f"{c:,}" for c in counts],
                    textposition="outside", hovertemplate="%{x}: %{text} images (%{y:.2f}%)<extra></extra>")
    fig.add_hline(y=10, line_dash="dot", annotation_text="balanced: 10%", annotation_position="bottom left")
    fig.update_yaxes(title="share of the split (%)")
    fig.update_xaxes(title="digit" if classes == DIGITS else "class", type="category")
    return _compact(fig.update_layout(barmode="group"), 380)


def image_grid_figure(images: np.ndarray, titles: list[str], columns: int = 10, height_per_row: int = 110
                      ) -> go.Figure:
    """Several small gray images in one figure (mean digits, preprocessing stages)."""
    fig = px.imshow(np.asarray(images), facet_col=0, facet_col_wrap=columns, color_continuous_scale="gray",
                    binary_string=False, facet_col_spacing=0.01, facet_row_spacing=0.08)
    # plotly's layout property is unannotated and returns self[...], so pyright takes it for the Figure itself
    for annotation in fig.layout.annotations:  # pyright: ignore[reportAttributeAccessIssue]
        annotation.text = titles[int(annotation.text.split("=")[1])]
    fig.update_xaxes(visible=False).update_yaxes(visible=False)
    fig.update_layout(coloraxis_showscale=False)
    rows = -(-len(images) // columns)
    return _compact(fig, 40 + height_per_row * rows)


def pixel_histogram_figure(histogram: np.ndarray) -> go.Figure:
    """Pixel intensities on a log scale: MNIST is mostly pure black background with a peak of saturated ink."""
    fig = go.Figure(go.Bar(x=np.arange(256), y=histogram, marker_line_width=0,
                           hovertemplate="intensity %{x}: %{y:,} pixels<extra></extra>"))
    fig.update_yaxes(type="log", title="pixels (log scale)").update_xaxes(title="intensity (0 = black, 255 = white)")
    return _compact(fig, 320)


def digit_map_figure(coordinates: np.ndarray, labels: np.ndarray, indices: np.ndarray, axis_titles: tuple[str, str],
                     wrong: np.ndarray | None = None, drawing: np.ndarray | None = None, classes: list[str] = DIGITS
                     ) -> go.Figure:
    """Images as points of a 2-D map (PCA of the pixels on Dataset, UMAP of a model's features on Evidence), coloured
    by digit. A point's customdata is its image index, so a click, box or lasso selects images. ``wrong`` (booleans)
    marks the images the model misreads; ``drawing`` (x, y) places the visitor's digit as a star. ``classes``: the
    name of each label (another dataset's)."""
    what = "digit" if classes == DIGITS else "class"
    frame = pd.DataFrame({"x": coordinates[:, 0], "y": coordinates[:, 1], what: np.asarray(classes)[labels],
                          "image": indices})
    fig = px.scatter(frame, x="x", y="y", color=what, custom_data=["image"], category_orders={what: list(classes)},
                     opacity=0.7)
    fig.update_traces(hovertemplate=f"image #%{{customdata[0]}}<extra>{what} %{{fullData.name}}</extra>",
                      marker_size=5)
    if wrong is not None and np.any(wrong):
        fig.add_scatter(x=coordinates[wrong, 0], y=coordinates[wrong, 1], mode="markers", name="misread",
                        customdata=np.asarray(indices)[wrong][:, None],
                        marker=dict(symbol="x-thin", size=9, line=dict(width=2, color="black")),
                        hovertemplate="image #%{customdata[0]}, misread<extra></extra>")
    if drawing is not None:
        fig.add_scatter(x=[drawing[0]], y=[drawing[1]], mode="markers", name="your drawing", hoverinfo="skip",
                        marker=dict(symbol="star", size=20, color="gold", line=dict(width=1.5, color="black")))
    fig.update_xaxes(title=axis_titles[0]).update_yaxes(title=axis_titles[1])
    return _compact(fig, 480)


def sequence_figure(rows: np.ndarray, title: str) -> go.Figure:
    """A 2-D array as a heatmap with labelled axes (the RNN's 28 steps, the MLP's 784-vector strip)."""
    fig = go.Figure(go.Heatmap(z=rows, colorscale="gray", showscale=False))
    fig.update_yaxes(autorange="reversed")
    return _compact(fig, 260 if rows.shape[0] > 1 else 120, title)


def probabilities_figure(titles: list[str], probabilities: np.ndarray, classes: list[str] = DIGITS) -> go.Figure:
    """Every model's probability of each class (digit) as one heat map (a row per model, darker is likelier). One figure
    rather than a bar chart per model: the Draw page redraws it on every stroke, and with a room full of visitors
    the server's time per figure counts."""
    probabilities = np.asarray(probabilities, dtype=float)
    fig = go.Figure(go.Heatmap(
        x=list(classes), y=titles, z=probabilities, zmin=0, zmax=1, colorscale="Reds", showscale=False, xgap=2, ygap=2,
        text=[[f"{value:.0%}" if value >= 0.005 else "" for value in row] for row in probabilities],
        texttemplate="%{text}", hovertemplate="%{y}: %{x} with %{z:.2%}<extra></extra>"))
    fig.update_xaxes(type="category", side="top", title=None).update_yaxes(autorange="reversed", title=None)
    return _compact(fig, 60 + 34 * len(titles))


def step_probabilities_figure(probabilities: np.ndarray, reading: Reading, steps_read: int) -> go.Figure:
    """A step-by-step reader's probability of each digit after each row or column, a line per digit, with the step
    shown."""
    probabilities = np.asarray(probabilities, dtype=float)
    steps, answer = np.arange(1, len(probabilities) + 1), probabilities[-1].argmax()
    fig = go.Figure([go.Scatter(x=steps, y=probabilities[:, digit], name=DIGITS[digit], mode="lines+markers",
                                line=dict(color=PALETTE[digit], width=3 if digit == answer else 1.5), marker_size=3,
                                hovertemplate=f"after {reading.unit} %{{x}}: {digit} with %{{y:.1%}}<extra></extra>")
                     for digit in range(10)])
    fig.add_vline(x=steps_read, line_dash="dot", line_color="green")
    fig.update_xaxes(title=f"{reading.unit}s read ({reading.direction})", range=[1, len(probabilities)])
    fig.update_yaxes(title="probability", range=[0, 1.02])
    return _compact(fig, 300)


def flip_epsilon_figure(epsilons: dict[str, float | None], limit: float) -> go.Figure:
    """The smallest attack strength that changes each model's answer; models that held up to ``limit`` (the end of
    the range searched) are drawn there, hatched."""
    titles = list(epsilons)
    held = [epsilons[title] is None for title in titles]
    values = [limit if epsilons[title] is None else epsilons[title] for title in titles]
    labels = ["held" if kept else f"{value:.2f}" for kept, value in zip(held, values, strict=True)]
    fig = go.Figure(go.Bar(x=titles, y=values, text=labels, textposition="outside",
                           marker_pattern_shape=["/" if kept else "" for kept in held]))
    fig.update_yaxes(title="smallest ε that flips the answer", range=[0, limit * 1.15])
    return _compact(fig, 300)


def roc_by_model_figure(evaluation: Evaluation, title: str) -> go.Figure:
    """One model's one-vs-rest ROC curve for every digit, and the micro-average."""
    metrics = evaluation.metrics
    fig = go.Figure()
    for digit in DIGITS:
        if digit not in metrics.roc:  # a digit absent from the evaluated images has no curve
            continue
        curve = metrics.roc[digit]
        fig.add_scatter(x=curve["fpr"], y=curve["tpr"], mode="lines",
                        name=f"{digit} (AUC {metrics.auc.per_class[digit]:.5f})")
    micro = metrics.roc["micro"]
    fig.add_scatter(x=micro["fpr"], y=micro["tpr"], mode="lines", line=dict(dash="dash", color="black"),
                    name=f"micro-average (AUC {metrics.auc.micro:.5f})")
    return _roc_axes(fig, f"{title}: macro AUC {metrics.auc.macro:.5f}")


def roc_by_class_figure(evaluations_by_title: dict[str, Evaluation], digit: int | None) -> go.Figure:
    """Every model's ROC curve for one digit against the rest, or (``digit`` None) its micro-average over all ten."""
    key = "micro" if digit is None else str(digit)
    fig = go.Figure()
    for title, evaluation in evaluations_by_title.items():
        curve = evaluation.metrics.roc.get(key)
        if curve is None:
            continue
        auc = evaluation.metrics.auc.micro if digit is None else evaluation.metrics.auc.per_class[key]
        fig.add_scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", name=f"{title} (AUC {auc:.5f})")
    return _roc_axes(fig, "every digit against the rest (micro-average)" if digit is None
                     else f"digit {digit} against the rest")


def _roc_axes(fig: go.Figure, title: str) -> go.Figure:
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="gray"), name="chance",
                    hoverinfo="skip")
    # Near-perfect classifiers hug the corner; a log false-positive axis shows where they differ.
    fig.update_xaxes(type="log", range=[-4, 0], title="false positive rate (log)")
    fig.update_yaxes(title="true positive rate", range=[0, 1.02])
    return _compact(fig, 420, title)


def confusion_figure(matrix: list[list[int]], title: str) -> go.Figure:
    """A confusion-matrix heatmap whose cells can be clicked.

    Plotly heatmap cells are not selectable, so an invisible scatter point sits on each cell and carries the
    selection: its x is the predicted digit and its y the true digit.
    """
    z = np.asarray(matrix)
    off_diagonal = z.astype(float).copy()
    np.fill_diagonal(off_diagonal, np.nan)
    true_digit, predicted = np.indices(z.shape)
    fig = go.Figure(go.Heatmap(z=np.log10(1 + z), x=DIGITS, y=DIGITS, text=z, texttemplate="%{text}",
                               colorscale="Blues", showscale=False, hoverinfo="skip"))
    fig.add_scatter(x=predicted.ravel(), y=true_digit.ravel(), mode="markers", customdata=z.ravel(),
                    marker=dict(size=18, opacity=0), showlegend=False,
                    hovertemplate="true %{y}, predicted %{x}: %{customdata} images<extra></extra>")
    fig.update_xaxes(title="predicted", type="category", categoryorder="array", categoryarray=DIGITS)
    fig.update_yaxes(title="true", type="category", categoryorder="array", categoryarray=DIGITS, autorange="reversed")
    fig.update_layout(hoverdistance=-1, clickmode="event+select", dragmode=False)
    return _compact(fig, 380, title)


def training_curves_figure(histories: dict[str, dict[str, list[float]]]) -> go.Figure:
    """Loss and accuracy per epoch for each model: training solid, validation dashed, one colour per model."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss (cross-entropy)", "accuracy"))
    for position, (title, history) in enumerate(histories.items()):
        colour = PALETTE[position % len(PALETTE)]
        for column, metric in ((1, "loss"), (2, "accuracy")):
            for split, dash in (("train", "solid"), ("val", "dash")):
                fig.add_scatter(x=history["epoch"], y=history[f"{split}_{metric}"], mode="lines+markers",
                                line=dict(color=colour, dash=dash), name=f"{title} ({split})",
                                legendgroup=title, showlegend=column == 1, row=1, col=column)
    fig.update_xaxes(title="epoch", dtick=1)
    fig.update_yaxes(type="log", row=1, col=1)
    return _compact(fig, 420)


def per_class_frame(evaluations_by_title: dict[str, Evaluation], classes: list[str] = DIGITS) -> pd.DataFrame:
    """Precision, recall and F1 per class (rows, named by ``classes``) and model (column groups)."""
    columns = {}
    for title, evaluation in evaluations_by_title.items():
        for metric in ("precision", "recall", "f1"):
            columns[(title, metric)] = [evaluation.metrics.per_class[digit][metric] for digit in DIGITS]
    frame = pd.DataFrame(columns, index=pd.Index(list(classes), name="digit" if classes == DIGITS else "class"))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def live_training_figure(events: list[Progress], title: str) -> go.Figure:
    """One run's progress so far: the running batch loss and accuracy between epochs (thin), and per-epoch training
    (solid) and validation (dashed) figures, on an x axis of fractional epochs."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss (cross-entropy)", "accuracy"))
    batches = [event for event in events if event.kind == "batch"]
    epochs = [event for event in events if event.kind == "epoch"]
    position = [event.epoch - 1 + event.batch / event.batches for event in batches]
    for column, batch_values, train_values, val_values in (
            (1, [e.loss for e in batches], [e.loss for e in epochs], [e.val_loss for e in epochs]),
            (2, [e.accuracy for e in batches], [e.accuracy for e in epochs], [e.val_accuracy for e in epochs])):
        first = column == 1
        fig.add_scatter(x=position, y=batch_values, mode="lines", line=dict(color=PALETTE[0], width=1),
                        opacity=0.45, name="running (batches)", legendgroup="batch", showlegend=first, row=1,
                        col=column)
        epoch_numbers = [event.epoch for event in epochs]
        fig.add_scatter(x=epoch_numbers, y=train_values, mode="lines+markers", line=dict(color=PALETTE[0]),
                        name="train (epoch)", legendgroup="train", showlegend=first, row=1, col=column)
        fig.add_scatter(x=epoch_numbers, y=val_values, mode="lines+markers", line=dict(color=PALETTE[1], dash="dash"),
                        name="validation (epoch)", legendgroup="val", showlegend=first, row=1, col=column)
    fig.update_xaxes(title="epoch", rangemode="tozero")
    fig.update_yaxes(type="log", row=1, col=1)
    return _compact(fig, 360, title)


def _model_colours(titles) -> dict[str, str]:
    return {title: PALETTE[position % len(PALETTE)] for position, title in enumerate(titles)}


def robustness_figure(curves_by_title: dict[str, dict[str, RobustnessCurve]], titles: dict[str, str],
                      units: dict[str, str] | None = None) -> go.Figure:
    """Test accuracy as each corruption grows: a panel per corruption (``titles``: name → panel title, ``units``:
    name → its level's unit, under the axis), a line per model in the same colour in every panel."""
    names = list(titles)
    columns = 4
    rows = -(-len(names) // columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[titles[name] for name in names],
                        horizontal_spacing=0.05, vertical_spacing=0.14)
    colours = _model_colours(curves_by_title)
    for position, name in enumerate(names):
        for title, curves in curves_by_title.items():
            curve = curves.get(name)
            if curve is None:
                continue
            order = np.argsort(curve.levels)
            fig.add_scatter(x=np.asarray(curve.levels)[order], y=100 * np.asarray(curve.accuracy)[order],
                            mode="lines+markers", name=title, legendgroup=title, showlegend=position == 0,
                            line=dict(color=colours[title]), marker_size=5,
                            hovertemplate=f"{title}: %{{y:.1f}}% at %{{x}}<extra></extra>",
                            row=position // columns + 1, col=position % columns + 1)
        if units and units.get(name):
            fig.update_xaxes(title_text=units[name], title_font_size=11, row=position // columns + 1,
                             col=position % columns + 1)
    fig.update_yaxes(range=[0, 101])
    fig.update_yaxes(title_text="test accuracy (%)", col=1)
    return _compact(fig, 320 * rows)


def reliability_figure(calibrations: dict[str, Calibration], calibrated: bool) -> go.Figure:
    """Accuracy against confidence per bin of top-label confidence (a point's size: its share of the test digits);
    on the diagonal a model is as sure as it is right."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                               line=dict(dash="dot", color="gray")))
    for title, calibration in calibrations.items():
        bins = calibration.reliability_after if calibrated else calibration.reliability_before
        counts = np.asarray(bins.count, dtype=float)
        fig.add_scatter(x=bins.confidence, y=bins.accuracy, mode="lines+markers", name=title,
                        marker=dict(size=4 + 16 * np.sqrt(counts / max(counts.sum(), 1))),
                        customdata=counts, hovertemplate=f"{title}: %{{y:.1%}} right when %{{x:.1%}} sure "
                                                         f"(%{{customdata:,}} digits)<extra></extra>")
    fig.update_xaxes(title="confidence (top label)", range=[0, 1.01])
    fig.update_yaxes(title="accuracy", range=[0, 1.01])
    return _compact(fig, 420)


def confidence_histogram_figure(calibrations: dict[str, Calibration], calibrated: bool) -> go.Figure:
    """How many test digits each model answers with each level of confidence (log scale: most are near 100%)."""
    fig = go.Figure()
    for title, calibration in calibrations.items():
        counts = np.asarray(calibration.histogram_after if calibrated else calibration.histogram_before)
        edges = np.linspace(0, 1, len(counts) + 1)
        fig.add_scatter(x=(edges[:-1] + edges[1:]) / 2, y=counts, mode="lines+markers", name=title,
                        line_shape="hvh", hovertemplate=f"{title}: %{{y:,}} digits near %{{x:.0%}}<extra></extra>")
    fig.update_xaxes(title="confidence (top label)", range=[0, 1])
    fig.update_yaxes(title="test digits (log scale)", type="log")
    return _compact(fig, 420)


def risk_coverage_figure(selectives: dict[str, Selective]) -> go.Figure:
    """Accuracy on the digits a model answers when it may abstain on the rest, least sure first: the curve an
    operator reads a confidence threshold from."""
    fig = go.Figure()
    target = None
    for title, selective in selectives.items():
        target = selective.target
        fig.add_scatter(x=100 * np.asarray(selective.coverage), y=100 * np.asarray(selective.accuracy),
                        mode="lines", name=title,
                        hovertemplate=f"{title}: %{{y:.2f}}% right answering %{{x:.0f}}%<extra></extra>")
    if target is not None:
        fig.add_hline(y=100 * target, line_dash="dot", annotation_text=f"{target:.1%}",
                      annotation_position="bottom left")
    fig.update_xaxes(title="coverage: share of test digits answered (%)", range=[0, 100.5])
    fig.update_yaxes(title="accuracy on those (%)")
    return _compact(fig, 420)


def disagreement_figure(matrix: np.ndarray, titles: list[str]) -> go.Figure:
    """Test digits on which each pair of models answers differently."""
    matrix = np.asarray(matrix)
    fig = go.Figure(go.Heatmap(z=matrix, x=titles, y=titles, colorscale="Oranges", showscale=False, xgap=2, ygap=2,
                               text=[[f"{value:,}" if row != column else "" for column, value in enumerate(values)]
                                     for row, values in enumerate(matrix)], texttemplate="%{text}",
                               hovertemplate="%{y} and %{x} disagree on %{z:,} digits<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return _compact(fig, 80 + 40 * len(titles))
