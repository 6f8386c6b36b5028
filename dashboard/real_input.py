"""What the Evidence page's "Real input" section draws and tabulates, from the real-input results
(``mnist_models.real_input``): pure functions, testable without Streamlit."""

from __future__ import annotations

import plotly.graph_objects as go

from mnist_models.real_input import RealInputResults, SourceResult

OUTCOME_COLOURS = {"right": "#2ca02c", "wrong": "#d62728", "refused": "#9e9e9e"}
CONTROL_LABELS = {"refused": "refused", "wrong": "read as a digit"}
"""A control's outcomes: it holds no digit, so refusing it is right and any digit read in it is wrong."""


def shown_models(results: RealInputResults, names: list[str]) -> list[str]:
    """Of ``names`` (the models selected, in order), those the results measured."""
    measured = {name for source in results.sources.values() for name in source.models}
    return [name for name in names if name in measured]


def real_input_figure(source: SourceResult, titles: dict[str, str], names: list[str]) -> go.Figure:
    """A horizontal stacked bar per model: its right, wrong and refused pictures of ``source`` (a control's: read as
    a digit and refused), as shares, with the counts on hover."""
    names = [name for name in names if name in source.models]
    outcomes = ["wrong", "refused"] if source.control else ["right", "wrong", "refused"]
    labels = CONTROL_LABELS if source.control else {outcome: outcome for outcome in outcomes}
    fig = go.Figure()
    for outcome in outcomes:
        counts = [getattr(source.models[name], outcome) for name in names]
        fig.add_bar(y=[titles.get(name, name) for name in names], x=[100 * count / max(source.pictures, 1)
                                                                     for count in counts],
                    customdata=counts, name=labels[outcome], orientation="h",
                    marker_color=OUTCOME_COLOURS[outcome],
                    hovertemplate=f"%{{y}}: %{{customdata:,}} {labels[outcome]} (%{{x:.1f}}%)<extra></extra>")
    fig.update_layout(barmode="stack", height=80 + 32 * len(names), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(title=f"share of the {source.pictures:,} pictures (%)", range=[0, 100]),
                      yaxis=dict(autorange="reversed"), legend=dict(orientation="h", y=-0.25))
    return fig


def source_rows(source: SourceResult, titles: dict[str, str], names: list[str]) -> list[dict[str, object]]:
    """A table row per model: its counts on ``source`` (a control's: refused and read as a digit)."""
    rows = []
    for name in names:
        tally = source.models.get(name)
        if tally is None:
            continue
        if source.control:
            rows.append({"model": titles.get(name, name), "refused": tally.refused, "read as a digit": tally.wrong,
                         "of those flagged as unlike its digits": tally.flagged})
        else:
            rows.append({"model": titles.get(name, name), "refused": tally.refused, "right": tally.right,
                         "wrong": tally.wrong, "right of all": tally.accuracy})
    return rows


def summary_rows(results: RealInputResults, titles: dict[str, str], names: list[str]) -> list[dict[str, object]]:
    """A row per model: its share right on each digit source (refused pictures count as not right) and over all."""
    rows = []
    for name in names:
        row: dict[str, object] = {"model": titles.get(name, name)}
        for source in results.digit_sources:
            tally = source.models.get(name)
            row[source.name] = tally.accuracy if tally is not None else None
        row["all digit sources"] = results.accuracy(name)
        rows.append(row)
    return rows
