"""The stakeholder report: every number it prints traced back to the file it came from (by parsing the HTML), nothing
fetched from the network, models without results listed as such, and the commands it prints train the same runs."""

from __future__ import annotations

import json
import shlex
import shutil
from ast import literal_eval
from html.parser import HTMLParser

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.report_html import report_html
from mnist_models import MODEL_NAMES, load_checkpoint, load_mnist
from mnist_models.cli import _config, build_parser, main
from mnist_models.models.registry import get_spec
from mnist_models.paths import CHECKPOINT_DIR, REPO_ROOT
from mnist_models.serving.catalog import load_catalog, of_dataset
from mnist_models.stakeholder_report import DEFAULT_REPORT_TITLE, Measured, build_report, findings, most_confused
from mnist_models.training.config import TRAINING_DEFAULTS


class ReportParser(HTMLParser):
    """The report's figures (``span.num``), every URL-bearing attribute, and the rows of the leaderboard."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: list[dict] = []
        self.urls: list[str] = []
        self.rows: dict[str, str] = {}  # data-model → the row's class
        self._open: dict | None = None
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.add(tag)
        self.urls += [value for name, value in attrs if name in ("src", "href", "xlink:href", "action", "poster")]
        if tag == "span" and attributes.get("class") == "num":
            self._open = {**attributes, "text": ""}
        if tag == "tr" and "data-model" in attributes:
            self.rows[attributes["data-model"]] = attributes.get("class", "")

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag):
        if tag == "span" and self._open is not None:
            self.numbers.append(self._open)
            self._open = None


def parse(document: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(document)
    return parser


def _walk(record, path: str):
    for step in path.split("."):
        record = record[int(step)] if isinstance(record, list) else record[step]
    return record


def resolve(source: str, mnist_root):
    """The value at ``source``, read straight from the files on disk (not through the report's own code)."""
    if source.startswith("dataset:"):
        split, what, *rest = source.removeprefix("dataset:").split(".")
        labels = load_mnist(split, mnist_root, download=False)[1].numpy()
        return len(labels) if what == "count" else int(np.bincount(labels, minlength=10)[int(rest[0])])
    name, record, path = source.split(":", 2)
    if record == "evaluation":
        return _walk(json.loads((CHECKPOINT_DIR / f"{name}.metrics.json").read_text()), path)
    if record == "evidence":
        return _walk(json.loads((CHECKPOINT_DIR / f"{name}.evidence.json").read_text()), path)
    if record == "checkpoint":
        return _walk(load_checkpoint(name)[1].to_dict(), path)
    assert record == "registry", source
    return getattr(get_spec(name), path)


def shown(template: str, value: float, scale: float) -> str:
    return template.format(value * scale if scale != 1 else value)


@pytest.fixture(scope="module")
def shipped_report(mnist_root) -> str:
    return report_html(load_catalog(), "Quarterly digit review", mnist_root)


def test_every_number_in_the_report_equals_the_saved_record_it_came_from(shipped_report, mnist_root):
    numbers = parse(shipped_report).numbers
    sourced = [number for number in numbers if "data-source" in number]
    # at least the leaderboard's eight columns and the class balance for every model and digit
    assert len(sourced) >= 8 * len(MODEL_NAMES) + 2 * 10
    for number in sourced:
        value = resolve(number["data-source"], mnist_root)
        assert float(number["data-value"]) == pytest.approx(value, rel=1e-12, abs=0), number
        assert number["text"] == shown(number["data-template"], value, float(number["data-scale"])), number
    derived = [number for number in numbers if "data-derived" in number]
    assert derived and len(derived) + len(sourced) == len(numbers)
    for number in derived:  # ratios, differences, intervals: printed from their own value in their own format
        assert number["text"] == shown(number["data-template"], literal_eval(number["data-value"]),
                                       float(number["data-scale"])), number


def test_the_report_has_every_section_chart_and_model(shipped_report):
    parsed = parse(shipped_report)
    assert set(parsed.rows) == set(MODEL_NAMES) and not any(parsed.rows.values())
    for heading in ("1. Objective", "2. The dataset", "3. Preprocessing", "4. The architectures",
                    "5. Training set-up", "6. Results", "7. Recommendation", "8. Findings",
                    "9. Limitations and next steps", "Appendix"):
        assert heading in shipped_report
    assert "<title>Quarterly digit review</title>" in shipped_report
    # one chart per model's confusion matrix, plus dataset, training, leaderboard, ROC, robustness, 2 calibration
    assert shipped_report.count("Plotly.newPlot(") == len(MODEL_NAMES) + 7
    assert "data:image/png;base64," in shipped_report  # the sample digits


def test_the_report_references_no_external_resource(shipped_report):
    parsed = parse(shipped_report)
    assert parsed.urls and all(url.startswith(("data:", "#")) for url in parsed.urls), parsed.urls
    assert "link" not in parsed.tags
    styles = shipped_report.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "url(" not in styles and "@import" not in styles


def test_the_findings_are_computed_from_the_evaluations():
    entries = of_dataset(load_catalog(), "mnist")
    report = build_report(entries, "t", data_root="/nonexistent")
    errors = {entry.title: entry.evaluation.metrics.errors for entry in entries}
    worst, best = max(errors, key=errors.get), min(errors, key=errors.get)
    first = "".join(str(part) for part in report.findings[0])
    assert first.startswith(f"{worst} makes {errors[worst]:,} errors")
    assert f"where {best} makes {errors[best]:,}" in first
    assert f"{errors[worst] / errors[best]:.1f}×" in first
    sources = {part.source for finding in report.findings for part in finding if isinstance(part, Measured)}
    assert {f"{name}:evaluation:metrics.errors" for name in MODEL_NAMES} & sources
    assert report.dataset is None and "/nonexistent" in report.dataset_problem


def test_next_steps_drop_what_the_report_already_measures():
    entries = of_dataset(load_catalog(), "mnist")
    with_all = build_report(entries, "t", data_root="/nonexistent").next_steps
    reported_only = build_report([entry for entry in entries if get_spec(entry.name).report_accuracy is not None], "t",
                                 data_root="/nonexistent").next_steps
    assert not any("ResNet" in step for step in with_all) and any("ResNet" in step for step in reported_only)
    assert len(reported_only) == len(with_all) + 1


def test_most_confused_finds_the_largest_mistake_off_the_diagonal():
    matrix = np.diag([50] * 10)
    matrix[4, 9], matrix[7, 1] = 6, 3
    assert most_confused(matrix.tolist()) == (4, 9, 6)
    assert most_confused(np.diag([5] * 10).tolist())[2] == 0
    assert not findings([])


def test_a_model_without_an_evaluation_is_listed_as_such_not_dropped(tmp_path, mnist_root):
    for name in ("cnn", "mlp"):
        shutil.copy(CHECKPOINT_DIR / f"{name}.pt", tmp_path / f"{name}.pt")
    shutil.copy(CHECKPOINT_DIR / "cnn.metrics.json", tmp_path / "cnn.metrics.json")
    entries = [entry for entry in load_catalog(tmp_path) if entry.name in ("cnn", "mlp")]
    document = report_html(entries, "partial", mnist_root)
    parsed = parse(document)
    assert parsed.rows == {"mlp": "not-evaluated", "cnn": ""}
    assert "not in the results: not evaluated yet" in document
    assert "Not evaluated, so absent from the results: MLP." in document
    assert "Recommendation" in document and "<strong>CNN</strong>" in document


def test_without_the_dataset_the_report_says_so_and_keeps_the_results(tmp_path):
    entries = [entry for entry in load_catalog() if entry.name == "cnn"]
    document = report_html(entries, "no data", tmp_path / "nowhere")
    assert "The dataset could not be read" in document and str(tmp_path / "nowhere") in document
    assert parse(document).rows == {"cnn": ""}


def test_the_printed_command_trains_the_same_run_again():
    """Each training command, parsed by the CLI, gives the configuration stored in the checkpoint."""
    report = build_report(load_catalog(), "t", data_root="/nonexistent")
    for section in report.models:
        _, meta = load_checkpoint(section.name)
        words = shlex.split(section.training.command)
        assert words[:4] == ["python", "-m", "mnist_models", "train"]
        args = build_parser().parse_args(words[3:])
        config = _config(section.architecture, args)
        stored = {**TRAINING_DEFAULTS, **meta.training}
        for field in ("epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "augment", "seed",
                      "label_smoothing", "room_augment"):
            assert getattr(config, field) == stored[field], (section.name, field)
        if stored.get("betas"):
            assert list(config.betas) == list(stored["betas"])
        assert {**get_spec(section.architecture).architecture_defaults, **config.architecture} == {
            **get_spec(section.architecture).architecture_defaults, **meta.architecture}


@pytest.mark.slow
def test_the_cli_writes_the_report_for_the_chosen_models(tmp_path, mnist_root, capfd):
    """The app draws it in a process of its own (python -m dashboard.report_html): its messages reach the terminal."""
    target = tmp_path / "out" / "report.html"
    assert main(["report", "--html", str(target), "--model", "rnn", "--model", "cnn", "--title", "Two models",
                 "--data-dir", str(mnist_root)]) == 0
    parsed = parse(target.read_text())
    assert list(parsed.rows) == ["rnn", "cnn"] and "<title>Two models</title>" in target.read_text()
    assert main(["report", "--html", str(target), "--model", "nonesuch"]) == 2
    assert "no model or saved run called nonesuch" in capfd.readouterr().err


def test_the_overview_offers_the_report_with_a_title():
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    assert not app.exception
    assert app.text_input(key="report_title").value == DEFAULT_REPORT_TITLE
    buttons = [button for button in app.get("download_button") if button.proto.label == "Download report"]
    assert len(buttons) == 1


def test_the_report_leaves_out_models_of_another_dataset():
    entries = load_catalog()
    assert any(entry.dataset == "fashion" for entry in entries), "the shipped fashion-cnn is in the catalog"
    report = build_report(entries, "t", data_root="/nonexistent")
    assert [section.name for section in report.models] == [entry.name for entry in of_dataset(entries, "mnist")]
