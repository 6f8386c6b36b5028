"""Leaderboard rows, the recommended model and the README's results table, all from the saved evaluation JSON."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoints import CheckpointError, load_metrics
from .registry import MODEL_NAMES, get_spec

TIE_TOLERANCE = 0.001  # accuracies within 0.1 percentage point (about one standard error on 10k images) tie
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def leaderboard_row(name: str, results: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    """One model's (or saved run's) headline figures, flat, for tables and charts."""
    spec = get_spec(results.get("model", name))
    metrics, trained = results["metrics"], results.get("trained", {})
    latency = results.get("latency", {})
    return {
        "model": name,
        "title": title or spec.title,
        "accuracy": metrics["accuracy"],
        "errors": metrics["errors"],
        "macro_auc": metrics["auc"]["macro"],
        "log_loss": metrics["log_loss"],
        "ece": metrics["ece"],
        "macro_f1": metrics["macro_f1"],
        "parameters": results["parameters"],
        "size_mb": results.get("size_bytes", 0) / 1e6,
        "latency_ms": latency.get("single", {}).get("p50_ms"),
        "batch_latency_ms": latency.get("batch", {}).get("p50_ms"),
        "epochs": trained.get("epochs_completed"),
        "train_time_s": trained.get("train_time_s"),
        "initialisation": trained.get("initialisation"),
        "report_accuracy": spec.report_accuracy,
        "report_epochs": spec.report_epochs,
        "target_accuracy": spec.target_accuracy,
    }


def leaderboard_rows(checkpoint_dir: str | os.PathLike | None = None, names: list[str] | None = None
                     ) -> list[dict[str, Any]]:
    """Rows for every model whose evaluation JSON exists; models without one are left out."""
    rows = []
    for name in names if names is not None else MODEL_NAMES:
        try:
            rows.append(leaderboard_row(name, load_metrics(name, checkpoint_dir)))
        except CheckpointError:
            continue
    return rows


@dataclass(frozen=True)
class Recommendation:
    model: str
    rule: str
    reasons: list[str]


RECOMMENDATION_RULE = (
    "Highest test accuracy wins; models within 0.1 percentage point of the best (about one standard error on "
    "10,000 test images) count as tied, and the tie goes to the fastest single-image inference."
)


def recommend(rows: list[dict[str, Any]]) -> Recommendation | None:
    """Apply RECOMMENDATION_RULE to measured leaderboard rows; None when there is nothing to compare."""
    if not rows:
        return None
    best_accuracy = max(row["accuracy"] for row in rows)
    tied = [row for row in rows if row["accuracy"] >= best_accuracy - TIE_TOLERANCE]
    chosen = min(tied, key=lambda row: (row["latency_ms"] if row["latency_ms"] is not None else float("inf"),
                                        -row["accuracy"]))
    others = [row for row in rows if row is not chosen]
    reasons = [f"test accuracy {chosen['accuracy']:.2%} ({chosen['errors']} errors in 10,000), "
               f"best measured: {best_accuracy:.2%}"]
    if len(tied) > 1:
        names = ", ".join(row["title"] for row in tied if row is not chosen)
        reasons.append(f"statistically tied with {names}; fastest of them at "
                       f"{chosen['latency_ms']:.2f} ms per image")
    reasons.append(f"macro AUC {chosen['macro_auc']:.5f}, calibration error {chosen['ece']:.3%}")
    if others:
        worst = min(others, key=lambda row: row["accuracy"])
        reasons.append(f"makes {worst['errors'] - chosen['errors']} fewer errors than {worst['title']}")
    return Recommendation(chosen["model"], RECOMMENDATION_RULE, reasons)


def render_results_markdown(rows: list[dict[str, Any]]) -> str:
    """The README's results table: measured figures next to the reports' and the targets."""
    lines = [
        "| model | test accuracy | report (epochs) | target | macro AUC | log loss | ECE | parameters | size | "
        "latency 1 image | latency 1000 images | epochs | training time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = "✅" if row["accuracy"] >= row["target_accuracy"] else "❌"
        latency = f"{row['latency_ms']:.2f} ms" if row["latency_ms"] is not None else "–"
        batch = f"{row['batch_latency_ms']:.0f} ms" if row["batch_latency_ms"] is not None else "–"
        train_time = f"{row['train_time_s']:.0f} s" if row["train_time_s"] is not None else "–"
        lines.append(
            f"| `{row['model']}` | **{row['accuracy']:.2%}** {met} | {row['report_accuracy']:.1%} "
            f"({row['report_epochs']}) | ≥ {row['target_accuracy']:.1%} | {row['macro_auc']:.5f} | "
            f"{row['log_loss']:.4f} | {row['ece']:.2%} | {row['parameters']:,} | {row['size_mb']:.2f} MB | "
            f"{latency} | {batch} | {row['epochs']} | {train_time} |")
    return "\n".join(lines)


def update_readme(readme: Path, table: str) -> None:
    """Replace the text between the results markers in ``readme`` with ``table``."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {README_START} … {README_END} markers")
    readme.write_text(pattern.sub(lambda _: f"{README_START}\n{table}\n{README_END}", text))
