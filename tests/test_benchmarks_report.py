"""The README's speed tables are rendered from the committed benchmark results, not typed."""

import json
import shutil

from benchmarks.report import RENDERERS, RESULTS, render, update_readme
from mnist_models.paths import REPO_ROOT


def test_every_committed_result_renders_and_the_readme_shows_exactly_that():
    readme = (REPO_ROOT / "README.md").read_text()
    for name in RENDERERS:
        assert (RESULTS / f"{name}.json").is_file(), f"benchmarks/results/{name}.json is not committed"
        section = render(name)
        assert f"<!-- speed:{name}:start -->\n{section}\n<!-- speed:{name}:end -->" in readme, (
            f"the README's {name} section is stale: run `python -m benchmarks.report --update-readme README.md`")


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
