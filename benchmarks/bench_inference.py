"""Inference latency of the shipped checkpoints, and of one drawing through all six models (the dashboard's path).

Per model (load_checkpoint(name): checkpoints/<name>.pt, or $DIGIT_LAB_CHECKPOINT_DIR's; on the CPU): wall-clock
milliseconds of predict_proba for one test image and for a batch of 1000 test images, p50 and p95, after warm-up
calls. Then the Draw page's work for one drawing: preprocess_drawing() of a synthetic 280x280 RGBA canvas (a white
vertical stroke on black) followed by predict_proba() with every model in turn, timed as one unit; its median is
compared with the 20 ms goal. A missing or
unreadable checkpoint is reported and skipped; with --untrained-if-missing its registry architecture is timed with
random weights instead (the latency does not depend on the weights' values) and marked "untrained".

Run from the repository root (quiet machine for real figures; --quick is a smoke run: few, smaller calls on one
torch thread):

    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_inference [--json inference.json]
    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_inference --quick
    ... --single-runs 200 --batch-runs 20 --drawing-runs 200 --untrained-if-missing --threads 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from benchmarks.common import (
    add_threads_option,
    apply_threads,
    environment,
    format_table,
    print_environment,
    write_json,
)
from mnist_models.data import load_mnist
from mnist_models.inference import predict_proba
from mnist_models.models.registry import MODEL_NAMES, get_spec
from mnist_models.preprocess import preprocess_drawing
from mnist_models.store.checkpoints import CheckpointError, load_checkpoint
from mnist_models.timing import percentiles

GOAL_MS = 20.0  # one drawing through all six models, preprocessing included
SINGLE_WARMUP = 5  # first calls allocate and pick kernels
BATCH_WARMUP = 1


def time_ms(call: Callable[[], object], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def drawn_canvas() -> np.ndarray:
    """What the drawing canvas hands over: 280x280 RGBA, opaque black, one white vertical stroke (a '1')."""
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)
    canvas[..., 3] = 255
    canvas[50:230, 130:150] = 255
    return canvas


def load_models(untrained_if_missing: bool):
    """({name: (network, 'checkpoint' | 'untrained')}, {name: why its checkpoint could not be used})."""
    models, missing = {}, {}
    for name in MODEL_NAMES:
        try:
            models[name] = (load_checkpoint(name)[0], "checkpoint")
        except CheckpointError as error:
            missing[name] = str(error)
            if untrained_if_missing:
                models[name] = (get_spec(name).build().eval(), "untrained")
    return models, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--single-runs", type=int, help="timed one-image calls per model (default 100; 10 quick)")
    parser.add_argument("--batch-runs", type=int, help="timed batch calls per model (default 10; 2 quick)")
    parser.add_argument("--batch-size", type=int, help="test images per batch call (default 1000; 200 quick)")
    parser.add_argument("--drawing-runs", type=int, help="timed drawing→all-models runs (default 100; 10 quick)")
    parser.add_argument("--untrained-if-missing", action="store_true",
                        help="time a missing checkpoint's architecture with random weights instead of skipping it")
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sizes")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    add_threads_option(parser)
    args = parser.parse_args()
    apply_threads(args.threads, args.quick)
    single_runs = args.single_runs or (10 if args.quick else 100)
    batch_runs = args.batch_runs or (2 if args.quick else 10)
    batch_size = args.batch_size or (200 if args.quick else 1000)
    drawing_runs = args.drawing_runs or (10 if args.quick else 100)

    info = environment()
    print_environment(info)
    models, missing = load_models(args.untrained_if_missing)
    for name, why in missing.items():
        print(f"  {name}: {'timed untrained, ' if name in models else 'skipped, '}{why}")

    test_images = load_mnist("test")[0]
    one_image = test_images[0].numpy()  # a uint8 28x28 array, as preprocess_drawing returns
    batch = test_images[:batch_size]
    per_model = {}
    for name, (network, source) in models.items():
        single = percentiles(time_ms(partial(predict_proba, network, one_image), single_runs, SINGLE_WARMUP)).to_dict()
        batched = percentiles(time_ms(partial(predict_proba, network, batch), batch_runs, BATCH_WARMUP)).to_dict()
        per_model[name] = {"source": source, "single_ms": single, "batch_ms": batched}

    canvas = drawn_canvas()
    all_models = [model for model, _ in models.values()]

    def one_drawing() -> None:
        image = preprocess_drawing(canvas)
        for model in all_models:
            predict_proba(model, image)

    total_ms = time_ms(one_drawing, drawing_runs, SINGLE_WARMUP)
    preprocess_ms = time_ms(partial(preprocess_drawing, canvas), drawing_runs, SINGLE_WARMUP)
    drawing = {"models": list(models), "runs": drawing_runs, "total_ms": percentiles(total_ms).to_dict(),
               "preprocess_ms": percentiles(preprocess_ms).to_dict(), "goal_ms": GOAL_MS}

    print(f"\npredict_proba latency in ms ({single_runs} one-image calls, {batch_runs} calls of {len(batch)} images)")
    print(format_table(
        ["model", "weights", "1 image p50", "p95", f"{len(batch)} images p50", "p95"],
        [[name, row["source"], f"{row['single_ms']['p50_ms']:.2f}", f"{row['single_ms']['p95_ms']:.2f}",
          f"{row['batch_ms']['p50_ms']:.1f}", f"{row['batch_ms']['p95_ms']:.1f}"] for name, row in per_model.items()]))
    median = drawing["total_ms"]["p50_ms"]
    print(f"\none drawing: preprocess_drawing + predict_proba with {len(models)} model(s), {drawing_runs} runs: "
          f"median {median:.2f} ms, p95 {drawing['total_ms']['p95_ms']:.2f} ms "
          f"(preprocessing alone: median {drawing['preprocess_ms']['p50_ms']:.2f} ms)")
    if len(models) == len(MODEL_NAMES):
        verdict = "within" if median <= GOAL_MS else "OVER"
        print(f"all six models: median {median:.2f} ms vs goal {GOAL_MS:.0f} ms: {verdict} the goal")
    else:
        print(f"not the all-six figure: {len(MODEL_NAMES) - len(models)} model(s) missing "
              f"({', '.join(name for name in MODEL_NAMES if name not in models)}); the goal is {GOAL_MS:.0f} ms")
    if args.json:
        write_json(args.json, {"benchmark": "inference_latency", "environment": info, "unit": "ms",
                               "single_runs": single_runs, "batch_runs": batch_runs, "batch_size": len(batch),
                               "missing_checkpoints": missing, "models": per_model, "drawing_all_models": drawing})


if __name__ == "__main__":
    main()
