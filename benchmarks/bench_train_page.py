"""What watching a run costs: training throughput with nobody watching, against the same run started from the Train
page and polled once a second the way its live fragment does, plus how long each poll takes on the server.

Each poll here reruns the whole page through AppTest (a real browser reruns only the live fragment), so the poll
times and the slowdown are upper bounds. Alone and watched runs alternate, so drift on a shared machine hits both.

Run: MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_train_page [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import environment, format_table, print_environment, write_json
from mnist_models import TrainConfig, load_evaluation, load_mnist
from mnist_models.paths import RUNS_DIR_ENV
from mnist_models.store.runs import find_run
from mnist_models.timing import percentiles
from mnist_models.training.worker import shared_worker

REPO = Path(__file__).resolve().parent.parent

START = "FormSubmitter:train_form-Start training"


def images_per_s(run_id: str, images: int, epochs: int) -> tuple[float, float]:
    """(training seconds, images/s) from the saved run's metadata: its training time includes each epoch's
    validation pass and excludes the test-set evaluation."""
    seconds = load_evaluation(find_run(run_id).checkpoint).trained.train_time_s
    return seconds, images * epochs / seconds


def alone(config: TrainConfig) -> str:
    worker = shared_worker()
    worker.submit([config])
    assert worker.wait(3600)
    return worker.snapshot()[0].run_id


def watched(config: TrainConfig, poll_s: float) -> tuple[str, list[float]]:
    """Start the run from the page, then rerun the page every ``poll_s`` until it is done; the reruns' durations."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=600).run()
    app.switch_page("pages/train_page.py").run()
    app.multiselect(key="train_models").set_value([config.model]).run()
    app.number_input(key=f"train_{config.model}_epochs").set_value(config.epochs)
    app.select_slider(key="train_subset").set_value(config.train_subset)
    app.button(key=START).click().run()
    polls = []
    while shared_worker().busy:
        time.sleep(poll_s)
        start = time.perf_counter()
        app.run()
        polls.append((time.perf_counter() - start) * 1000)
    assert not app.exception, [exception.value for exception in app.exception]
    return shared_worker().snapshot()[0].run_id, polls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls (the page's run_every)")
    parser.add_argument("--quick", action="store_true", help="one repeat on a 5,000-image subset (a smoke run)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    subset = 5000 if args.quick else None
    repeats = 1 if args.quick else args.repeats
    os.environ[RUNS_DIR_ENV] = tempfile.mkdtemp(prefix="bench-runs-")
    info = environment()
    print_environment(info)
    config = TrainConfig.for_model(args.model, epochs=args.epochs, train_subset=subset, device="cpu")
    images = subset or len(load_mnist("train")[0]) - config.validation_size

    results = {"alone": [], "watched": []}
    polls: list[float] = []
    for _ in range(repeats):
        results["alone"].append(images_per_s(alone(config), images, args.epochs))
        run_id, run_polls = watched(config, args.poll)
        results["watched"].append(images_per_s(run_id, images, args.epochs))
        polls += run_polls
    rows = []
    summary = {}
    for mode, samples in results.items():
        summary[mode] = {"train_s": [s for s, _ in samples], "images_per_s": [r for _, r in samples],
                         "median_images_per_s": statistics.median(r for _, r in samples)}
        rows.append([mode, ", ".join(f"{s:.1f}" for s, _ in samples), f"{summary[mode]['median_images_per_s']:,.0f}"])
    ratio = summary["watched"]["median_images_per_s"] / summary["alone"]["median_images_per_s"]
    poll = percentiles(polls)
    print(format_table(["mode", "training s", "median images/s"], rows))
    print(f"watched/alone throughput: {ratio:.2f}; page rerun per poll: p50 {poll.p50_ms:.0f} ms, "
          f"p95 {poll.p95_ms:.0f} ms over {len(polls)} polls")
    if args.json:
        write_json(args.json, {"environment": info, "model": args.model, "epochs": args.epochs, "images": images,
                               "poll_interval_s": args.poll, "runs": summary, "watched_over_alone": ratio,
                               "poll_ms": poll.to_dict(), "polls": len(polls)})


if __name__ == "__main__":
    main()
