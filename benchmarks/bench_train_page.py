"""What the server's other work costs a training, and what a training costs the server: CNN training throughput with
nobody watching, with the Train page polled once a second (as its live panel does), and while visitors draw; and the
server-side time of each drawing, with and without a training running.

Visitors are threads of this process calling the Draw page's prediction path (every model's ``predict_proba``
through ``predict_with_each``), as Streamlit's session threads do, each drawing again ``--think`` seconds after its
last answer. The Train page's polls rerun the whole page through AppTest (a browser reruns only the live fragment),
so the watched figures are upper bounds. Modes alternate, so drift on a shared machine hits all of them.

Where the training runs is recorded (``training_in``): in a process of its own at a lower priority (this version),
or in a thread of the server (older versions, on which this script runs unchanged: copy it into their checkout).

Run: MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_train_page [--quick] [--visitors 4]
     [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import environment, format_table, print_environment, write_json
from mnist_models import TrainConfig, load_evaluation, load_mnist
from mnist_models.jobs.worker import TrainingWorker, shared_worker
from mnist_models.paths import RUNS_DIR_ENV
from mnist_models.serving.catalog import load_catalog, predict_with_each
from mnist_models.store.runs import find_run
from mnist_models.timing import percentiles

REPO = Path(__file__).resolve().parent.parent
START = "FormSubmitter:train_form-Start training"
TRAINING_MODES = ("alone", "watched", "drawing")
RUN_EVIDENCE_ENV = "DIGIT_LAB_RUN_EVIDENCE"  # mnist_models.jobs.child.EVIDENCE_ENV; older versions ignore it


def images_per_s(run_id: str, images: int, epochs: int) -> tuple[float, float]:
    """(training seconds, images/s) from the saved run's metadata: its training time includes each epoch's
    validation pass and excludes the test-set evaluation."""
    seconds = load_evaluation(find_run(run_id).checkpoint).trained.train_time_s
    return seconds, images * epochs / seconds


class Visitors:
    """``count`` threads drawing: each predicts one test image with every model, waits ``think_s``, and again."""

    def __init__(self, count: int, think_s: float, entries, images: np.ndarray) -> None:
        self.latencies_ms: list[float] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._draw, args=(number, think_s, entries, images), daemon=True)
                         for number in range(count)]

    def _draw(self, number: int, think_s: float, entries, images: np.ndarray) -> None:
        drawing = number
        while not self._stop.is_set():
            start = time.perf_counter()
            predict_with_each(entries, images[drawing % len(images)])
            self.latencies_ms.append((time.perf_counter() - start) * 1000)
            drawing += len(self._threads)
            self._stop.wait(think_s)

    def __enter__(self) -> Visitors:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exception) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


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


def drawing(config: TrainConfig, visitors: Visitors) -> tuple[str, list[float]]:
    """Train with visitors drawing; the server-side time of each drawing made meanwhile."""
    with visitors:
        run_id = alone(config)
    return run_id, visitors.latencies_ms


def summary(values: list[float]) -> dict[str, float]:
    return percentiles(values).to_dict() if values else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="the model trained (default cnn; mlp, the quickest, with --quick)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-subset", type=int, help="train on this many images (default: all of them)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls (the page's run_every)")
    parser.add_argument("--visitors", type=int, default=4, help="visitors drawing at once")
    parser.add_argument("--think", type=float, default=0.25, help="seconds a visitor waits between drawings")
    parser.add_argument("--modes", nargs="+", choices=TRAINING_MODES, default=list(TRAINING_MODES))
    parser.add_argument("--idle-drawing", type=float, default=15.0,
                        help="seconds the visitors draw with no training, for the drawings' baseline")
    parser.add_argument("--server-threads", type=int,
                        help="torch threads of this process, the server: its inference, and in older versions its "
                             "training too (default: torch's, one per core; the dashboard now sets 1)")
    parser.add_argument("--quick", action="store_true",
                        help="one repeat of mlp on a 250-image subset, each run's evidence only its calibration, "
                             "2 visitors, 1 s of drawing with no training (a smoke run)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    args.model = args.model or ("mlp" if args.quick else "cnn")
    subset = 250 if args.quick else args.train_subset  # 250: the Train page's smallest subset
    repeats = 1 if args.quick else args.repeats
    visitors = 2 if args.quick else args.visitors
    os.environ[RUNS_DIR_ENV] = tempfile.mkdtemp(prefix="bench-runs-")
    if args.quick:  # the evidence every saved run gets: its quickest part still runs it, the map alone takes ~20 s
        os.environ.setdefault(RUN_EVIDENCE_ENV, "calibration")
    if args.server_threads:
        torch.set_num_threads(args.server_threads)
    info = environment()
    print_environment(info)
    training_in = "a process of its own" if hasattr(TrainingWorker, "training_process") else "a thread of the server"
    print(f"training runs in {training_in}")
    config = TrainConfig.for_model(args.model, epochs=args.epochs, train_subset=subset, device="cpu")
    images = subset or len(load_mnist("train")[0]) - config.validation_size
    entries = load_catalog()
    test_images = load_mnist("test")[0][:200].numpy()
    predict_with_each(entries, test_images[0])  # warm-up: first inference of each model

    with Visitors(visitors, args.think, entries, test_images) as idle_visitors:
        time.sleep(min(args.idle_drawing, 1) if args.quick else args.idle_drawing)
    samples: dict[str, list[tuple[float, float]]] = {mode: [] for mode in args.modes}
    polls: list[float] = []
    busy_drawings: list[float] = []
    for _ in range(repeats):
        for mode in args.modes:
            if mode == "alone":
                run_id = alone(config)
            elif mode == "watched":
                run_id, run_polls = watched(config, args.poll)
                polls += run_polls
            else:
                run_id, latencies = drawing(config, Visitors(visitors, args.think, entries, test_images))
                busy_drawings += latencies
            samples[mode].append(images_per_s(run_id, images, args.epochs))
            print(f"{mode}: {samples[mode][-1][1]:,.0f} images/s", flush=True)

    runs, rows = {}, []
    for mode, measured in samples.items():
        runs[mode] = {"train_s": [s for s, _ in measured], "images_per_s": [r for _, r in measured],
                      "median_images_per_s": statistics.median(r for _, r in measured)}
        rows.append([mode, ", ".join(f"{s:.1f}" for s, _ in measured), f"{runs[mode]['median_images_per_s']:,.0f}"])
    print(format_table(["mode", "training s", "median images/s"], rows))
    ratios = {mode: runs[mode]["median_images_per_s"] / runs["alone"]["median_images_per_s"]
              for mode in runs if mode != "alone" and "alone" in runs}
    idle, busy = summary(idle_visitors.latencies_ms), summary(busy_drawings)
    print("over alone: " + ", ".join(f"{mode} {ratio:.2f}" for mode, ratio in ratios.items()))
    print(f"a drawing through every model, server side, {visitors} visitors: p50 {idle.get('p50_ms', 0):.0f} / "
          f"p95 {idle.get('p95_ms', 0):.0f} ms without a training, p50 {busy.get('p50_ms', 0):.0f} / "
          f"p95 {busy.get('p95_ms', 0):.0f} ms while one trains")
    if polls:
        poll = percentiles(polls)
        print(f"page rerun per poll: p50 {poll.p50_ms:.0f} ms, p95 {poll.p95_ms:.0f} ms over {len(polls)} polls")
    if args.json:
        write_json(args.json, {
            "environment": info, "training_in": training_in, "model": args.model, "epochs": args.epochs,
            "images": images, "poll_interval_s": args.poll, "visitors": visitors, "think_s": args.think,
            "runs": runs, "over_alone": ratios, "watched_over_alone": ratios.get("watched"),
            "poll_ms": summary(polls), "polls": len(polls),
            "drawing_ms": {"without_training": idle, "while_training": busy,
                           "drawings": [len(idle_visitors.latencies_ms), len(busy_drawings)]}})


if __name__ == "__main__":
    main()
