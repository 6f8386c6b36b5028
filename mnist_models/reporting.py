"""Leaderboard rows, the recommended model and the results table (README and docs), all from the saved evaluation
JSON."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .models.registry import MODEL_NAMES, get_spec
from .real_input import RealInputResults, load_real_input_results
from .store.checkpoints import CheckpointError, checkpoint_path, load_evaluation
from .store.evidence_records import Evidence, evidence_path, load_evidence, overall_robustness
from .store.files import replace_between_markers
from .store.records import Evaluation, RecordError

TIE_TOLERANCE = 0.001  # accuracies within 0.1 percentage point (about one standard error on 10k images) tie
RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass(frozen=True)
class LeaderboardRow:
    """One model's (or saved run's) headline figures, flat, for tables and charts; None where not measured."""

    name: str  # the catalog name: a registry name, or a run id
    model: str  # the registry name of its architecture
    title: str
    family: str  # how its architecture reads a digit (the registry's Family)
    accuracy: float
    errors: int
    count: int  # test images evaluated
    macro_auc: float
    log_loss: float
    ece: float
    macro_f1: float
    parameters: int | None
    size_mb: float | None
    latency_ms: float | None  # one image, median
    batch_latency_ms: float | None
    epochs: int | None
    train_time_s: float | None
    initialisation: str | None
    report_accuracy: float | None  # None: the reports suggested the architecture without measuring it
    report_epochs: int | None
    target_accuracy: float
    robustness: float | None = None  # overall robustness score (mnist_models.evidence), when computed
    calibrated_ece: float | None = None  # calibration error after temperature scaling, when computed
    real_input: float | None = None  # right share of the real-input benchmark's digits (refusals count as wrong)


def leaderboard_row(name: str, evaluation: Evaluation, title: str | None = None, evidence: Evidence | None = None,
                    real_input: RealInputResults | None = None) -> LeaderboardRow:
    """The row of one evaluation, with the robustness and calibration of its ``evidence`` and its accuracy in the
    ``real_input`` results when given; ``name`` is how the catalog calls it (a run id for saved runs)."""
    spec = get_spec(evaluation.model)
    metrics, trained, latency = evaluation.metrics, evaluation.trained, evaluation.latency
    return LeaderboardRow(
        name=name, model=spec.name, title=title or spec.title, family=spec.family.value, accuracy=metrics.accuracy,
        errors=metrics.errors,
        count=metrics.count, macro_auc=metrics.auc.macro, log_loss=metrics.log_loss, ece=metrics.ece,
        macro_f1=metrics.macro_f1, parameters=evaluation.parameters,
        size_mb=evaluation.size_bytes / 1e6 if evaluation.size_bytes is not None else None,
        latency_ms=latency.single.p50_ms if latency else None,
        batch_latency_ms=latency.batch.p50_ms if latency else None, epochs=trained.epochs_completed,
        train_time_s=trained.train_time_s, initialisation=trained.initialisation,
        report_accuracy=spec.report_accuracy, report_epochs=spec.report_epochs, target_accuracy=spec.target_accuracy,
        robustness=overall_robustness(evidence.robustness) if evidence and evidence.robustness else None,
        calibrated_ece=evidence.calibration.ece_after if evidence and evidence.calibration else None,
        real_input=real_input.accuracy(name) if real_input is not None else None,
    )


def real_input_results() -> RealInputResults | None:
    """The real-input benchmark's committed results, or None when missing or unreadable (the rows then go without)."""
    try:
        return load_real_input_results()
    except RecordError:
        return None


def leaderboard_rows(checkpoint_dir: str | os.PathLike | None = None, names: list[str] | None = None
                     ) -> list[LeaderboardRow]:
    """Rows for every shipped model whose evaluation can be read; models without one are left out."""
    rows, real_input = [], real_input_results()
    for name in names if names is not None else MODEL_NAMES:
        try:
            evaluation = load_evaluation(name, checkpoint_dir)
        except CheckpointError:
            continue
        try:
            evidence = load_evidence(evidence_path(checkpoint_path(name, checkpoint_dir)))
        except (RecordError, FileNotFoundError):
            evidence = None  # not computed, or unusable: the row shows the evaluation's figures alone
        rows.append(leaderboard_row(name, evaluation, evidence=evidence, real_input=real_input))
    return rows


@dataclass(frozen=True)
class Recommendation:
    name: str  # the chosen row's catalog name
    rule: str
    reasons: list[str]


REAL_INPUT_TOLERANCE = 0.02
"""Real-input accuracies within 2 percentage points of the best count as good enough for a room (the benchmark's
sources hold a few thousand digits: a standard error of about half a point each)."""

RECOMMENDATION_RULE = (
    "What the room sees decides first: where real input was measured (other writers' digits, close-ups, scans, "
    "low-resolution pictures: the Evidence page's Real input section), only models within 2 percentage points of "
    "the best real-input accuracy are candidates, so a model that is best on MNIST but fails other writers is not "
    "recommended for a demo room. Among the candidates the highest test accuracy wins; models within 0.1 percentage "
    "point of it (about one standard error of an accuracy near 99% on MNIST's test set) count as tied, and the tie "
    "goes to the fastest single-image inference."
)


def recommend(rows: list[LeaderboardRow]) -> Recommendation | None:
    """Apply RECOMMENDATION_RULE to measured leaderboard rows; None when there is nothing to compare."""
    if not rows:
        return None
    measured = [row.real_input for row in rows if row.real_input is not None]
    best_real = max(measured, default=None)
    candidates = rows if best_real is None else [
        row for row in rows if row.real_input is not None and row.real_input >= best_real - REAL_INPUT_TOLERANCE]
    best_accuracy = max(row.accuracy for row in candidates)
    tied = [row for row in candidates if row.accuracy >= best_accuracy - TIE_TOLERANCE]
    chosen = min(tied, key=lambda row: (row.latency_ms if row.latency_ms is not None else float("inf"),
                                        -row.accuracy))
    others = [row for row in rows if row is not chosen]
    reasons = [f"test accuracy {chosen.accuracy:.2%} ({chosen.errors} errors in {chosen.count:,}), "
               f"best measured: {max(row.accuracy for row in rows):.2%}"]
    if best_real is not None and chosen.real_input is not None:
        left_out = [row.title for row in rows if row not in candidates]
        reasons.append(f"real input (other writers, close-ups, scans) read right {chosen.real_input:.1%}, best "
                       f"measured: {best_real:.1%}" + (f"; not candidates for a room: {', '.join(left_out)}"
                                                      if left_out else ""))
    if len(tied) > 1:
        names = ", ".join(row.title for row in tied if row is not chosen)
        speed = f"{chosen.latency_ms:.2f} ms per image" if chosen.latency_ms is not None else "latency not measured"
        reasons.append(f"statistically tied with {names}; fastest of them ({speed})")
    reasons.append(f"macro AUC {chosen.macro_auc:.5f}, calibration error {chosen.ece:.3%}")
    if others:
        worst = min(others, key=lambda row: row.accuracy)
        reasons.append(f"makes {worst.errors - chosen.errors} fewer errors than {worst.title}")
    return Recommendation(chosen.name, RECOMMENDATION_RULE, reasons)


def _or_dash(value, template: str) -> str:
    return template.format(value) if value is not None else "–"


def reported_figure(row: LeaderboardRow) -> str:
    """What the reports measured for this architecture, as shown in every results table."""
    if row.report_accuracy is None:
        return "suggested, not measured"
    return f"{row.report_accuracy:.1%} ({row.report_epochs})"


def render_results_markdown(rows: list[LeaderboardRow]) -> str:
    """The README's results table: measured figures next to the reports' and the targets. Latency is left to the
    Speed section's table, which the inference benchmark measures on a quiet machine."""
    lines = [
        "| model | test accuracy | report (epochs) | target | macro AUC | log loss | ECE (temperature-scaled) | "
        "robustness | parameters | size | epochs | training time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = "✅" if row.accuracy >= row.target_accuracy else "❌"
        lines.append(
            f"| `{row.name}` | **{row.accuracy:.2%}** {met} | {reported_figure(row)} | "
            f"≥ {row.target_accuracy:.1%} | {row.macro_auc:.5f} | {row.log_loss:.4f} | {row.ece:.2%} "
            f"({_or_dash(row.calibrated_ece, '{:.2%}')}) | {_or_dash(row.robustness, '{:.3f}')} | "
            f"{_or_dash(row.parameters, '{:,}')} | {_or_dash(row.size_mb, '{:.2f} MB')} | "
            f"{_or_dash(row.epochs, '{}')} | {_or_dash(row.train_time_s, '{:.0f} s')} |")
    return "\n".join(lines)


def update_results_table(document: Path, table: str) -> None:
    """Replace the text between the results markers in ``document`` (the README, the docs' Results page) with
    ``table``."""
    if not replace_between_markers(document, RESULTS_START, RESULTS_END, table):
        raise ValueError(f"{document} has no {RESULTS_START} … {RESULTS_END} markers")
