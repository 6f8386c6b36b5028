import pytest

from mnist_models.reporting import README_END, README_START, recommend, render_results_markdown, update_readme


def _row(model, accuracy, latency, errors=None):
    return {"model": model, "title": model.upper(), "accuracy": accuracy, "errors": errors or round((1 - accuracy) * 1e4),
            "macro_auc": 0.999, "ece": 0.01, "latency_ms": latency, "batch_latency_ms": 10.0, "log_loss": 0.03,
            "parameters": 1000, "size_mb": 0.1, "epochs": 5, "train_time_s": 60.0, "report_accuracy": 0.98,
            "report_epochs": 5, "target_accuracy": 0.99}


def test_the_most_accurate_model_is_recommended():
    choice = recommend([_row("a", 0.990, 1.0), _row("b", 0.995, 3.0), _row("c", 0.97, 0.5)])
    assert choice.model == "b" and "99.50%" in choice.reasons[0]


def test_a_statistical_tie_goes_to_the_faster_model():
    choice = recommend([_row("slow", 0.9935, 5.0), _row("fast", 0.9930, 0.4), _row("poor", 0.95, 0.1)])
    assert choice.model == "fast" and any("tied" in reason for reason in choice.reasons)


def test_nothing_to_recommend_without_results():
    assert recommend([]) is None


def test_results_table_marks_targets_and_replaces_the_readme_section(tmp_path):
    table = render_results_markdown([_row("cnn", 0.9931, 0.5), _row("rnn", 0.9712, 0.8)])
    assert "| `cnn` | **99.31%** ✅" in table and "| `rnn` | **97.12%** ❌" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold\n{README_END}\noutro\n")
    update_readme(readme, table)
    text = readme.read_text()
    assert "old" not in text and table in text and text.startswith("intro") and text.endswith("outro\n")
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        update_readme(readme, table)
