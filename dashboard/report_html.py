"""The stakeholder report as one self-contained HTML file: the content of ``mnist_models.stakeholder_report``, the
dashboard's own Plotly figures, and Plotly's script inlined, so it opens with no network and prints to PDF.

Each figure in the text is a ``<span class="num">`` carrying its source (``data-source``), raw value and format, so
the file can be checked number by number against the records it was written from.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import jinja2
import numpy as np
import plotly.graph_objects as go
from markupsafe import Markup, escape
from PIL import Image
from plotly.offline import get_plotlyjs

from mnist_models.evidence import CORRUPTIONS
from mnist_models.serving.catalog import CatalogEntry, load_catalog
from mnist_models.stakeholder_report import (
    DEFAULT_REPORT_TITLE,
    Measured,
    StakeholderReport,
    build_report,
    evaluation_of,
    row_of,
)
from mnist_models.store.files import atomic_write

from .figures import (
    class_distribution_figure,
    confusion_figure,
    leaderboard_figure,
    reliability_figure,
    robustness_figure,
    roc_by_class_figure,
    training_curves_figure,
)

PAGE_WIDTH_PX = 680
"""Width of a full-width chart: an A4 page less 15 mm margins at the browser's 96 dpi, so printing never cuts one."""

TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("dashboard", "templates"), autoescape=True,
                               undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def number(value: Measured | None) -> Markup:
    """A figure with its provenance, or a dash where it was not measured."""
    if value is None:
        return Markup('<span class="na">–</span>')
    provenance = f'data-source="{escape(value.source)}"' if value.source is not None else "data-derived"
    return Markup(f'<span class="num" {provenance} data-value="{value.value!r}" '
                  f'data-template="{escape(value.template)}" data-scale="{value.scale!r}">{escape(str(value))}</span>')


def sentence(parts) -> Markup:
    return Markup("").join(number(part) if isinstance(part, Measured) else escape(part) for part in parts)


TEMPLATES.filters["number"] = number
TEMPLATES.filters["sentence"] = sentence


def _chart(fig: go.Figure, width: int = PAGE_WIDTH_PX) -> Markup:
    """A figure as a static-size div whose script draws it with the inlined Plotly."""
    # plotly's layout property is unannotated and returns self[...], so pyright takes it for the Figure itself
    top = fig.layout.margin.t or 0  # pyright: ignore[reportAttributeAccessIssue]
    fig.update_layout(width=width, autosize=False, template="plotly_white", margin_t=max(top, 40))
    fig.update_annotations(font_size=11)  # subplot titles, kept inside their narrower print-width panels
    return Markup(fig.to_html(full_html=False, include_plotlyjs=False,
                              config={"displayModeBar": False, "responsive": False}))


def _samples_png(samples: np.ndarray) -> str:
    """The sample digits as one PNG (a column per digit), for an ``<img>`` data URI."""
    digits, per_digit, height, width = samples.shape
    grid = samples.transpose(1, 2, 0, 3).reshape(per_digit * height, digits * width)
    picture = Image.fromarray(grid).resize((digits * width * 2, per_digit * height * 2), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _charts(report: StakeholderReport) -> dict[str, Markup | list[tuple[str, Markup]]]:
    evaluated = report.evaluated
    evaluations = {section.title: evaluation_of(section) for section in evaluated}
    charts: dict = dict.fromkeys(("classes", "leaderboard", "roc", "confusion", "training", "robustness",
                                  "reliability_before", "reliability_after"))  # None: not drawn, for lack of data
    if report.dataset is not None:
        charts["classes"] = _chart(class_distribution_figure(
            np.array([count.value for count in report.dataset.train_per_class]),
            np.array([count.value for count in report.dataset.test_per_class])))
    if evaluated:
        charts["leaderboard"] = _chart(leaderboard_figure([row_of(section) for section in evaluated]))
        charts["roc"] = _chart(roc_by_class_figure(evaluations, None))
        charts["confusion"] = [(section.title, _chart(confusion_figure(evaluation_of(section).metrics.confusion_matrix,
                                                                       section.title), PAGE_WIDTH_PX // 2))
                               for section in evaluated]
    histories = {section.title: section.training_history for section in report.models if section.training_history}
    if histories:
        charts["training"] = _chart(training_curves_figure(histories))
    curves = {section.title: section.evidence.robustness for section in evaluated
              if section.evidence is not None and section.evidence.robustness}
    if curves:
        charts["robustness"] = _chart(robustness_figure(curves, {name: c.title for name, c in CORRUPTIONS.items()},
                                                        {name: c.unit for name, c in CORRUPTIONS.items()}))
    calibrations = {section.title: section.evidence.calibration for section in evaluated
                    if section.evidence is not None and section.evidence.calibration}
    if calibrations:
        charts["reliability_before"] = _chart(reliability_figure(calibrations, False), PAGE_WIDTH_PX // 2)
        charts["reliability_after"] = _chart(reliability_figure(calibrations, True), PAGE_WIDTH_PX // 2)
    return charts


def render_html(report: StakeholderReport) -> str:
    """The whole report as one HTML document."""
    return TEMPLATES.get_template("report.html.j2").render(
        report=report, charts=_charts(report), plotly_js=Markup(get_plotlyjs()),
        samples=_samples_png(report.dataset.samples) if report.dataset is not None else None,
        corruptions=CORRUPTIONS)


def report_html(entries: Iterable[CatalogEntry], title: str, data_root: str | os.PathLike | None = None) -> str:
    return render_html(build_report(entries, title, data_root))


def write_report(path: str | os.PathLike, entries: Iterable[CatalogEntry], title: str,
                 data_root: str | os.PathLike | None = None) -> Path:
    """Write the report atomically (a failed write leaves any earlier file whole)."""
    document = report_html(entries, title, data_root).encode("utf-8")
    return atomic_write(path, lambda stream: stream.write(document))


def main(argv: Sequence[str] | None = None) -> int:
    """``digit-lab report --html FILE`` runs this (``python -m dashboard.report_html``): the report is drawn with the
    app's figures, and the library's command line never imports the app. Exit 2 names an unknown model."""
    parser = argparse.ArgumentParser(prog="digit-lab report --html", description=main.__doc__)
    parser.add_argument("html", metavar="FILE", help="where to write the report")
    parser.add_argument("--title", default=DEFAULT_REPORT_TITLE)
    parser.add_argument("--model", action="append", metavar="NAME", help="a model or saved run (default: all)")
    parser.add_argument("--checkpoint-dir")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    entries = load_catalog(args.checkpoint_dir)
    if args.model:
        by_name = {entry.name: entry for entry in entries}
        unknown = [name for name in args.model if name not in by_name]
        if unknown:
            print(f"error: no model or saved run called {', '.join(unknown)}; known: {', '.join(by_name)}",
                  file=sys.stderr)
            return 2
        entries = [by_name[name] for name in args.model]
    for entry in entries:
        if entry.evaluation is None:
            print(f"note: {entry.name} has no evaluation; the report lists it as not evaluated", file=sys.stderr)
    path = write_report(args.html, entries, args.title, args.data_dir)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {len(entries)} models)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
