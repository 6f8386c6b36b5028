import pytest

from mnist_models.reporting import (
    RESULTS_END,
    RESULTS_START,
    LeaderboardRow,
    leaderboard_row,
    recommend,
    render_results_markdown,
    update_results_table,
)
from mnist_models.store.checkpoints import load_evaluation


def _row(name, accuracy, latency, errors=None, real_input=None):
    return LeaderboardRow(
        name=name, model="cnn", title=name.upper(), family="convolutional", accuracy=accuracy,
        errors=errors or round((1 - accuracy) * 1e4),
        count=10_000, macro_auc=0.999, log_loss=0.03, ece=0.01, macro_f1=0.99, parameters=1000, size_mb=0.1,
        latency_ms=latency, batch_latency_ms=10.0, epochs=5, train_time_s=60.0, initialisation="random",
        report_accuracy=0.98, report_epochs=5, target_accuracy=0.99, real_input=real_input)


def test_the_most_accurate_model_is_recommended():
    choice = recommend([_row("a", 0.990, 1.0), _row("b", 0.995, 3.0), _row("c", 0.97, 0.5)])
    assert choice.name == "b"
    assert choice.reasons[0] == "test accuracy 99.50% (50 errors in 10,000), best measured: 99.50%"
    assert choice.reasons[-1] == "makes 250 fewer errors than C"


def test_a_statistical_tie_goes_to_the_faster_model():
    choice = recommend([_row("slow", 0.9935, 5.0), _row("fast", 0.9930, 0.4), _row("poor", 0.95, 0.1)])
    assert choice.name == "fast" and any("tied" in reason for reason in choice.reasons)


def test_a_model_best_on_mnist_that_fails_other_writers_is_not_recommended():
    """Issue 24: what the room sees decides first; test accuracy then chooses among the models that read real input
    within REAL_INPUT_TOLERANCE of the best."""
    rows = [_row("mnist_best", 0.9970, 1.0, real_input=0.55), _row("room", 0.9950, 2.0, real_input=0.95),
            _row("close", 0.9930, 0.5, real_input=0.94), _row("unmeasured", 0.9990, 0.1)]
    choice = recommend(rows)
    assert choice.name == "room"
    assert "best measured: 99.90%" in choice.reasons[0]
    assert choice.reasons[1] == ("real input (other writers, close-ups, scans) read right 95.0%, best measured: "
                                 "95.0%; not candidates for a room: MNIST_BEST, UNMEASURED")
    assert recommend([_row("a", 0.990, 1.0), _row("b", 0.995, 3.0)]).name == "b", "no real input: as before"


def test_nothing_to_recommend_without_results():
    assert recommend([]) is None


def test_results_table_marks_targets_and_replaces_the_readme_section(tmp_path):
    table = render_results_markdown([_row("cnn", 0.9931, 0.5), _row("rnn", 0.9712, 0.8)])
    assert "| `cnn` | **99.31%** ✅" in table and "| `rnn` | **97.12%** ❌" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{RESULTS_START}\nold\n{RESULTS_END}\noutro\n")
    update_results_table(readme, table)
    text = readme.read_text()
    assert "old" not in text and table in text and text.startswith("intro") and text.endswith("outro\n")
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        update_results_table(readme, table)


def test_a_row_of_a_partial_evaluation_marks_what_was_not_measured(tmp_path):
    evaluation = load_evaluation("cnn")
    evaluation.latency, evaluation.size_bytes, evaluation.parameters = None, None, None
    row = leaderboard_row("run007-cnn", evaluation, "CNN · run 7")
    assert (row.name, row.model, row.title) == ("run007-cnn", "cnn", "CNN · run 7")
    assert row.latency_ms is None and row.size_mb is None and row.accuracy == evaluation.metrics.accuracy
    line = render_results_markdown([row]).splitlines()[-1]
    assert line.startswith(f"| `run007-cnn` | **{row.accuracy:.2%}**") and f" | – | – | {row.epochs} | " in line
    assert recommend([row]).name == "run007-cnn"
