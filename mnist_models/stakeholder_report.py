"""The stakeholder report's content, computed from the saved records: what a reader of the two analysis reports gets,
with every figure measured here and traceable to the file it came from.

The rendering (HTML with the dashboard's charts) lives in ``dashboard.report_html``; this module holds no markup and
no chart code, so its numbers and sentences are tested without either. Every figure is a :class:`Measured`, which
carries the record path it was read from (``"cnn:evaluation:metrics.accuracy"``), so the rendered report can be
checked number by number against the files on disk.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from .data import MNIST_MEAN, MNIST_STD, DatasetMissingError, load_mnist
from .evidence import CORRUPTIONS
from .models.registry import get_spec
from .real_input import RealInputResults
from .reporting import LeaderboardRow, Recommendation, leaderboard_row, real_input_results, recommend
from .serving.catalog import CatalogEntry, of_dataset
from .store.evidence_records import Evidence, overall_robustness
from .store.records import CheckpointMeta, Evaluation, library_versions
from .training.config import TRAINING_DEFAULTS

DEFAULT_REPORT_TITLE = "Reading handwritten digits: which neural network?"

SAMPLES_PER_DIGIT = 4
"""Test digits of each class shown in the dataset section."""

Z_95 = 1.96
"""Normal quantile of a two-sided 95% interval, for the sampling error of a test accuracy."""


@dataclass(frozen=True)
class Measured:
    """A number as the report prints it, with where it came from.

    ``source`` is ``"<catalog name>:<record>:<dotted path>"`` with record one of ``evaluation`` (the ``.metrics.json``
    beside the checkpoint), ``evidence`` (``.evidence.json``), ``checkpoint`` (the metadata saved in the ``.pt``) or
    ``registry`` (the model's registry entry), or ``"dataset:<path>"``; None for a figure derived from several
    (a ratio, a difference, an interval), whose inputs are printed beside it.
    """

    value: float
    template: str = "{}"
    source: str | None = None
    scale: float = 1.0  # applied before formatting: bytes shown as MB

    def __str__(self) -> str:
        return self.template.format(self.value * self.scale if self.scale != 1 else self.value)


Sentence = tuple[str | Measured, ...]
"""Text and figures in reading order: the renderer keeps each figure's source beside it."""


def _eval(name: str, path: str, value: float, template: str, scale: float = 1.0) -> Measured:
    return Measured(value, template, f"{name}:evaluation:{path}", scale)


@dataclass(frozen=True)
class TrainingSetup:
    """How one model's weights were produced, read from its checkpoint."""

    epochs: Measured | None
    batch_size: int | None
    optimizer: str | None
    learning_rate: float | None
    schedule: str | None
    weight_decay: float | None
    augmentation: str
    train_time: Measured | None
    device: str | None
    initialisation: str | None
    created: str | None
    command: str  # the command line that trains these weights again


@dataclass(frozen=True)
class ModelSection:
    """One model of the report; ``missing`` says why it has no results (it is listed, never dropped)."""

    name: str
    title: str
    architecture: str  # the registry name
    description: str
    report_name: str  # the analysis report that compared this architecture, and how
    is_run: bool
    parameters: Measured | None
    training: TrainingSetup | None
    row: LeaderboardRow | None
    evaluation: Evaluation | None
    evidence: Evidence | None
    missing: str | None
    figures: dict[str, Measured] = field(default_factory=dict)  # leaderboard column → figure, for the tables
    training_history: dict[str, list[float]] = field(default_factory=dict)  # per-epoch curves from the checkpoint


@dataclass(frozen=True)
class DatasetSummary:
    train_count: Measured
    test_count: Measured
    train_per_class: list[Measured]
    test_per_class: list[Measured]
    samples: np.ndarray  # (digits, SAMPLES_PER_DIGIT, 28, 28) uint8 test images


@dataclass(frozen=True)
class StakeholderReport:
    title: str
    generated: str
    models: list[ModelSection]
    recommendation: Recommendation | None
    findings: list[Sentence]
    limitations: list[Sentence]
    next_steps: list[str]
    dataset: DatasetSummary | None
    dataset_problem: str | None
    normalisation: tuple[float, float]  # the mean and standard deviation every input is normalised with
    versions: dict[str, str]
    commands: list[str]

    @property
    def evaluated(self) -> list[ModelSection]:
        return [section for section in self.models if section.row is not None]


def row_of(section: ModelSection) -> LeaderboardRow:
    """The row of a section with results (``StakeholderReport.evaluated``); a clear error for one without."""
    if section.row is None:
        raise ValueError(f"{section.name} has no results: {section.missing}")
    return section.row


def evaluation_of(section: ModelSection) -> Evaluation:
    """The evaluation of a section with results, as ``row_of``."""
    if section.evaluation is None:
        raise ValueError(f"{section.name} has no results: {section.missing}")
    return section.evaluation


# --- building it ---------------------------------------------------------------------------------------------------

def build_report(entries: Iterable[CatalogEntry], title: str, data_root: str | os.PathLike | None = None
                 ) -> StakeholderReport:
    """The report for the MNIST models of ``entries`` (the dashboard's selection, saved runs included), in their
    order: its dataset, preprocessing and figures are MNIST's, so models of another dataset are left out."""
    real_input = real_input_results()
    models = [_model_section(entry, real_input) for entry in of_dataset(list(entries), "mnist")]
    rows = [section.row for section in models if section.row is not None]
    try:
        dataset, dataset_problem = _dataset_summary(data_root), None
    except DatasetMissingError as error:
        dataset, dataset_problem = None, str(error)
    commands = [section.training.command for section in models if section.training is not None]
    commands += ["python -m mnist_models evaluate" + "".join(f" --model {section.architecture}" for section in models
                                                             if not section.is_run),
                 "python -m mnist_models report --html report.html"]
    return StakeholderReport(
        title=title, generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), models=models,
        recommendation=recommend(rows), findings=findings(models), limitations=limitations(models),
        next_steps=next_steps(models), dataset=dataset, dataset_problem=dataset_problem,
        normalisation=(MNIST_MEAN, MNIST_STD),
        versions={**library_versions(), "platform": platform.platform(), "processor": platform.machine()},
        commands=commands)


LEADERBOARD_FIGURES = {
    # column → (dotted path in the evaluation, template, scale)
    "accuracy": ("metrics.accuracy", "{:.2%}", 1.0),
    "errors": ("metrics.errors", "{:,}", 1.0),
    "macro_auc": ("metrics.auc.macro", "{:.5f}", 1.0),
    "log_loss": ("metrics.log_loss", "{:.4f}", 1.0),
    "ece": ("metrics.ece", "{:.2%}", 1.0),
    "macro_f1": ("metrics.macro_f1", "{:.4f}", 1.0),
    "size_mb": ("size_bytes", "{:.2f} MB", 1e-6),
    "latency_ms": ("latency.single.p50_ms", "{:.2f} ms", 1.0),
}


def _model_section(entry: CatalogEntry, real_input: RealInputResults | None = None) -> ModelSection:
    architecture = entry.meta.model if entry.meta is not None else entry.name
    spec = get_spec(architecture)
    evaluation = entry.evaluation
    missing = None
    if evaluation is None:
        missing = (entry.evaluation_error or entry.error or "not evaluated yet: `python -m mnist_models evaluate` "
                   "measures it")
    row = leaderboard_row(entry.name, evaluation, entry.title, entry.evidence, real_input) \
        if evaluation is not None else None
    figures: dict[str, Measured] = {}
    if evaluation is not None:
        record = evaluation.to_dict()
        for column, (path, template, scale) in LEADERBOARD_FIGURES.items():
            value = _lookup(record, path)
            if value is not None:
                figures[column] = _eval(entry.name, path, value, template, scale)
        if spec.report_accuracy is not None:
            figures["report_accuracy"] = Measured(spec.report_accuracy, "{:.1%}",
                                                  f"{entry.name}:registry:report_accuracy")
        if entry.evidence is not None and entry.evidence.calibration is not None:
            figures["calibrated_ece"] = Measured(entry.evidence.calibration.ece_after, "{:.2%}",
                                                 f"{entry.name}:evidence:calibration.ece_after")
        if entry.evidence is not None and entry.evidence.robustness:
            figures["robustness"] = Measured(overall_robustness(entry.evidence.robustness), "{:.3f}")
        if row is not None and row.real_input is not None:
            figures["real_input"] = Measured(row.real_input, "{:.1%}")
    parameters = None
    if evaluation is not None and evaluation.parameters is not None:
        parameters = _eval(entry.name, "parameters", evaluation.parameters, "{:,}")
    elif entry.meta is not None and entry.meta.parameters is not None:
        parameters = Measured(entry.meta.parameters, "{:,}", f"{entry.name}:checkpoint:parameters")
    return ModelSection(name=entry.name, title=entry.title, architecture=architecture, description=spec.description,
                        report_name=spec.report,
                        is_run=entry.is_run, parameters=parameters,
                        training=_training_setup(entry.name, entry.meta) if entry.meta is not None else None,
                        row=row, evaluation=evaluation, evidence=entry.evidence, missing=missing, figures=figures,
                        training_history=entry.meta.history if entry.meta is not None else {})


def _lookup(record: dict, path: str) -> Any:
    """``record``'s value at a dotted ``path`` (list positions as numbers), None where a step is missing."""
    value = record
    for step in path.split("."):
        if isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            return None
    return value


def _training_setup(name: str, meta: CheckpointMeta) -> TrainingSetup:
    config = {**TRAINING_DEFAULTS, **meta.training}
    augmentation = ", ".join(
        ([f"random rotations, shifts and zoom (strength {config['augment_strength']:g})"] if config.get("augment")
         else []) + (["real input's pen widths, resolution loss and blur, slant and contrast"]
                     if config.get("room_augment") else [])) or "none"
    source = f"{name}:checkpoint:"
    return TrainingSetup(
        epochs=Measured(meta.epochs_completed, "{}", source + "epochs_completed")
        if meta.epochs_completed is not None else None,
        batch_size=config.get("batch_size"), optimizer=config.get("optimizer"), learning_rate=config.get("lr"),
        schedule=config.get("schedule"), weight_decay=config.get("weight_decay"), augmentation=augmentation,
        train_time=Measured(meta.train_time_s, "{:.0f} s", source + "train_time_s")
        if meta.train_time_s is not None else None,
        device=meta.device, initialisation=meta.initialisation, created=meta.created,
        command=training_command(meta.model, config, meta.architecture))


def training_command(model: str, config: dict, architecture: dict) -> str:
    """The CLI line that trains with ``config`` again (every setting spelled out, so registry changes cannot alter
    what it does)."""
    parts = [f"python -m mnist_models train --model {model}"]
    for key, flag in (("epochs", "--epochs"), ("batch_size", "--batch-size"), ("lr", "--lr"),
                      ("optimizer", "--optimizer"), ("schedule", "--schedule"), ("weight_decay", "--weight-decay"),
                      ("label_smoothing", "--label-smoothing"), ("seed", "--seed")):
        if config.get(key) is not None:
            parts.append(f"{flag} {config[key]:g}" if isinstance(config[key], float) else f"{flag} {config[key]}")
    if config.get("betas"):
        parts.append("--betas {:g} {:g}".format(*config["betas"]))
    parts.append("--augment" if config.get("augment") else "--no-augment")
    if config.get("augment"):
        parts.append(f"--augment-strength {config['augment_strength']:g}")
    if config.get("room_augment"):
        parts.append("--room-augment")
    if config.get("train_subset"):
        parts.append(f"--train-subset {config['train_subset']}")
    if config.get("weights"):
        parts.append(f"--weights {config['weights']}")
    parts += [f"--arch {shlex.quote(f'{key}={_json_value(value)}')}" for key, value in sorted(architecture.items())]
    return " ".join(parts)


def _json_value(value) -> str:
    """How ``--arch KEY=VALUE`` reads a value back: JSON, with a bare word for a string."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _dataset_summary(data_root) -> DatasetSummary:
    train_images, train_labels = load_mnist("train", data_root, download=False)
    test_images, test_labels = load_mnist("test", data_root, download=False)
    train_counts = np.bincount(train_labels.numpy(), minlength=10)
    test_counts = np.bincount(test_labels.numpy(), minlength=10)
    labels = test_labels.numpy()
    samples = np.stack([test_images[np.flatnonzero(labels == digit)[:SAMPLES_PER_DIGIT]].numpy()
                        for digit in range(10)])
    return DatasetSummary(
        train_count=Measured(len(train_labels), "{:,}", "dataset:train.count"),
        test_count=Measured(len(test_labels), "{:,}", "dataset:test.count"),
        train_per_class=[Measured(int(count), "{:,}", f"dataset:train.per_class.{digit}")
                         for digit, count in enumerate(train_counts)],
        test_per_class=[Measured(int(count), "{:,}", f"dataset:test.per_class.{digit}")
                        for digit, count in enumerate(test_counts)],
        samples=samples.astype(np.uint8))


# --- the sentences -------------------------------------------------------------------------------------------------

def _report_gain(section: ModelSection) -> float | None:
    """How far the measured accuracy is above its analysis report's figure; None where the report measured none."""
    row = row_of(section)
    return None if row.report_accuracy is None else row.accuracy - row.report_accuracy


def findings(models: list[ModelSection]) -> list[Sentence]:
    """What the measurements say, as sentences built from them; a finding whose inputs are missing is left out."""
    sections = [section for section in models if section.row is not None]
    if not sections:
        return []
    out: list[Sentence] = []
    by_errors = sorted(sections, key=lambda section: row_of(section).errors)
    best, worst = by_errors[0], by_errors[-1]
    if row_of(worst).errors > row_of(best).errors:
        ratio = row_of(worst).errors / max(row_of(best).errors, 1)
        out.append((f"{worst.title} makes ", worst.figures["errors"], f" errors on the test digits where {best.title} "
                    "makes ", best.figures["errors"], ": ", Measured(ratio, "{:.1f}×"), " as many."))
    gains = [(section, above) for section in sections if (above := _report_gain(section)) is not None]
    beaten = [(section, above) for section, above in gains if above > 0]
    if beaten:
        gain = max(beaten, key=lambda pair: pair[1])[0]
        out.append((f"{len(beaten)} of {len(gains)} models beat the figure their analysis report gave; the largest "
                    f"gain is {gain.title}'s: ", gain.figures["accuracy"], " against ", gain.figures["report_accuracy"],
                    "."))
    for section in (best, worst) if worst is not best else (best,):
        true_digit, predicted, count = most_confused(evaluation_of(section).metrics.confusion_matrix)
        if count:
            out.append((f"{section.title}'s commonest mistake: a {true_digit} read as a {predicted}, ",
                        _eval(section.name, f"metrics.confusion_matrix.{true_digit}.{predicted}", count, "{}"),
                        " times."))
    out += _pair_finding(sections, "cnn_basic", "cnn_dropout", "Dropout")
    timed = [section for section in sections if "latency_ms" in section.figures]
    if len(timed) > 1:
        fast = min(timed, key=lambda section: section.figures["latency_ms"].value)
        slow = max(timed, key=lambda section: section.figures["latency_ms"].value)
        out.append((f"{fast.title} answers one image in ", fast.figures["latency_ms"], f" (median), {slow.title} in ",
                    slow.figures["latency_ms"], "."))
    robust = [section for section in sections if "robustness" in section.figures]
    if len(robust) > 1:
        most = max(robust, key=lambda section: section.figures["robustness"].value)
        least = min(robust, key=lambda section: section.figures["robustness"].value)
        out.append((f"Under rotation, shifts, zoom, stroke width, noise, occlusion and FGSM attacks, {most.title} "
                    "keeps the most accuracy (robustness score ", most.figures["robustness"], f") and "
                    f"{least.title} the least (", least.figures["robustness"], ")."))
    calibrated = [section for section in sections if "calibrated_ece" in section.figures]
    if calibrated:
        loosest = max(calibrated, key=lambda section: row_of(section).ece)
        out.append((f"{loosest.title} states its confidence least accurately (calibration error ",
                    loosest.figures["ece"], "); one temperature fitted on the validation digits brings it to ",
                    loosest.figures["calibrated_ece"], "."))
    return out


def _pair_finding(sections: list[ModelSection], first: str, second: str, what: str) -> list[Sentence]:
    """Report 004's question, answered when both of its models are in the report."""
    by_name = {section.architecture: section for section in sections if not section.is_run}
    if first not in by_name or second not in by_name:
        return []
    a, b = by_name[first], by_name[second]
    change = row_of(b).errors - row_of(a).errors
    verb = "fewer" if change < 0 else "more"
    return [(f"{what}: {b.title} makes ", b.figures["errors"], f" errors, {a.title} ", a.figures["errors"], " (",
             Measured(abs(change), "{}"), f" {verb}).")]


def most_confused(matrix: list[list[int]]) -> tuple[int, int, int]:
    """(true digit, predicted digit, count) of the largest off-diagonal cell."""
    cells = np.asarray(matrix).copy()
    np.fill_diagonal(cells, -1)
    true_digit, predicted = np.unravel_index(int(np.argmax(cells)), cells.shape)
    return int(true_digit), int(predicted), int(max(cells[true_digit, predicted], 0))


def limitations(models: list[ModelSection]) -> list[Sentence]:
    """What the figures cannot say, including the sampling error of the test accuracy itself."""
    out: list[Sentence] = []
    sections = [section for section in models if section.row is not None]
    if sections:
        best = max(sections, key=lambda section: row_of(section).accuracy)
        p, n = row_of(best).accuracy, row_of(best).count
        margin = Z_95 * math.sqrt(p * (1 - p) / n)
        out.append(("Every accuracy is measured on one test set of ", _eval(best.name, "metrics.count", n, "{:,}"),
                    " digits: the 95% interval of the best (", best.figures["accuracy"], ") is ±",
                    Measured(margin, "{:.2%}"), ", so differences below about that are not evidence of a better "
                    "model."))
    missing = [section.title for section in models if section.row is None]
    if missing:
        out.append((f"Not evaluated, so absent from the results: {', '.join(missing)}.",))
    no_evidence = [section.title for section in sections if section.evidence is None]
    if no_evidence:
        out.append((f"Robustness and calibration were not computed for: {', '.join(no_evidence)}.",))
    out.append(("MNIST digits are centred, size-normalised and clean; handwriting from photos goes through the same "
                "preprocessing, and the robustness curves show how fast each model fails when it does not fit.",))
    out.append((f"The robustness score averages {len(CORRUPTIONS)} corruptions at fixed levels; other levels or kinds "
                "of damage may rank the models differently.",))
    return out


def next_steps(models: list[ModelSection]) -> list[str]:
    """The reports' next steps that this report's models have not yet taken, and what its own measurements suggest."""
    suggested = {section.architecture for section in models
                 if section.row is not None and get_spec(section.architecture).report_accuracy is None}
    steps = []
    if not suggested:
        steps.append("Deeper convolutional networks (a small ResNet) and hybrid architectures (a convolutional front "
                     "end read by a recurrent layer), as both reports propose.")
    steps += [
        "A harder dataset in the same format (Fashion-MNIST), to see which conclusions carry over.",
        "A hyperparameter search (learning rate, batch size, width, dropout, augmentation) driven by validation "
        "accuracy.",
        "Training the small models with rotations and shifts: on photos of whole numbers, tilted digits cause most of "
        "their mistakes, and the models trained with such augmentation read them best.",
    ]
    return steps
