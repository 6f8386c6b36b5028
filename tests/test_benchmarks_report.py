"""The speed tables in the README and the docs pages are rendered from the committed benchmark results, not typed."""

import json
import shutil

from benchmarks.report import (
    HEADLINE,
    RENDERERS,
    RESULTS,
    SECTIONS,
    documents,
    render,
    stale_sections,
    update_docs,
    update_readme,
)
from mnist_models.paths import REPO_ROOT


def test_every_committed_result_renders_and_every_file_shows_exactly_that():
    for name in RENDERERS:
        assert (RESULTS / f"{name}.json").is_file(), f"benchmarks/results/{name}.json is not committed"
    assert REPO_ROOT / "README.md" in documents() and REPO_ROOT / "docs" / "results.md" in documents()
    assert stale_sections() == [], "run `python -m benchmarks.report --update-docs`"
    assert f"<!-- speed:{HEADLINE}:start -->" in (REPO_ROOT / "README.md").read_text(), "the README's key figures"


def _tree(tmp_path):
    """A README and two docs pages, one in a subfolder, each with a stale section, and a copy of the results."""
    results = tmp_path / "benchmarks" / "results"
    shutil.copytree(RESULTS, results)
    (tmp_path / "docs" / "more").mkdir(parents=True)
    files = {"README.md": HEADLINE, "docs/results.md": "inference", "docs/more/page.md": "training"}
    for path, name in files.items():
        (tmp_path / path).write_text(f"intro\n<!-- speed:{name}:start -->\nstale\n<!-- speed:{name}:end -->\noutro\n")
    return results, files


def test_a_stale_section_in_any_file_is_found_and_update_docs_rewrites_every_file(tmp_path):
    results, files = _tree(tmp_path)
    problems = stale_sections(tmp_path, results)
    for path, name in files.items():
        assert f"{path}: the {name} section is stale" in problems
    assert "no file holds the dashboard section" in problems

    updated = update_docs(tmp_path, results)
    assert {path.relative_to(tmp_path).as_posix(): names for path, names in updated.items()} == {
        path: [name] for path, name in files.items()}
    for path, name in files.items():
        text = (tmp_path / path).read_text()
        assert "stale" not in text and text.startswith("intro\n") and text.endswith("outro\n")
        assert f"<!-- speed:{name}:start -->\n{render(name, results)}\n<!-- speed:{name}:end -->" in text
    remaining = stale_sections(tmp_path, results)
    assert remaining == [f"no file holds the {name} section" for name in SECTIONS if name not in files.values()]


def test_the_headline_reads_several_results_and_says_what_is_missing(tmp_path):
    results, _ = _tree(tmp_path)
    headline = render(HEADLINE, results)
    inference = json.loads((results / "inference.json").read_text())
    assert f"{inference['drawing_all_models']['total_ms']['p50_ms']:.2f} / " in headline
    assert "`speedrun` trains in" in headline and "mouse-up to every answer" in headline
    real_input = json.loads((results / "real_input.json").read_text())
    no_digit = real_input["sources"]["no-digit"]
    assert f"pictures without a digit: {no_digit['refused']:,} of {no_digit['pictures']:,} refused" in headline
    (results / "latency.json").unlink()
    assert "Not measured yet: `python -m benchmarks.bench_latency --json benchmarks/results/latency.json`." in render(
        HEADLINE, results)


def test_sections_are_replaced_in_place_and_a_missing_result_says_how_to_measure_it(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    (results / "training.json").unlink()
    inference = json.loads((results / "inference.json").read_text())
    inference["models"]["cnn"]["single_ms"] = {"p50_ms": 0.25, "p95_ms": 0.5}
    (results / "inference.json").write_text(json.dumps(inference))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- speed:inference:start -->\nstale\n<!-- speed:inference:end -->\n"
                      "<!-- speed:training:start -->\nstale\n<!-- speed:training:end -->\noutro\n")
    assert update_readme(readme, results) == ["inference", "training"]
    text = readme.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    before = inference["models"]["cnn"]["before"]["single_ms"]["p50_ms"]
    assert f"| `cnn` | checkpoint | {before:.2f} → 0.25 ms |" in text
    assert "Not measured yet: `python -m benchmarks.bench_training --json benchmarks/results/training.json`." in text
