"""Inference latency of the shipped checkpoints before and after the CPU levers, one drawing through all the models
(the dashboard's path), and the evaluation of every shipped model on the test set.

Per model (load_checkpoint(name): checkpoints/<name>.pt, or $DIGIT_LAB_CHECKPOINT_DIR's; on the CPU): wall-clock
milliseconds of predict_proba for one test image and for a batch of 1000 test images, p50 and p95, after warm-up
calls, two ways in alternation, so that a load from other work weighs on both alike: "before", the plain path (the
module in PyTorch's default memory format, the whole batch in one forward pass, as predict_proba ran before the
levers), and "after", the network as load_checkpoint returns it (channels-last weights) through predict_proba's own
chunks (mnist_models.inference.BATCH_SIZE). Then the Draw page's work for one drawing: preprocess_drawing() of a
synthetic 280x280 RGBA canvas (a white vertical stroke on black) followed by predict_proba() with every model in turn,
timed as one unit; its median is compared with the 20 ms goal. Last, what `digit-lab evaluate` does for each shipped
checkpoint (load it, read its validation digits, evaluate() on the 10,000 test images with the latency measurement
and the novelty calibration, the bulk passes on mnist_models.inference.folded_for_inference's copy; only writing the
file is left out), in seconds per model and in total, against the 20 s goal.

A missing or unreadable checkpoint is reported and skipped; with --untrained-if-missing its registry architecture is
timed with random weights instead (the latency does not depend on the weights' values), marked "untrained", and not
evaluated.

Run from the repository root (quiet machine for real figures; --quick is a smoke run: few, smaller calls on one
torch thread, and 500 test and validation digits to evaluate on):

    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_inference [--json inference.json]
    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_inference --quick
    ... --single-runs 200 --batch-runs 20 --drawing-runs 200 --untrained-if-missing --threads 1
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from benchmarks.common import (
    add_threads_option,
    apply_threads,
    environment,
    format_table,
    print_environment,
    write_json,
)
from mnist_models.data import load_mnist
from mnist_models.evaluation import evaluate, validation_images
from mnist_models.inference import BATCH_SIZE, predict_proba
from mnist_models.models.registry import MODEL_NAMES, get_spec
from mnist_models.preprocess import preprocess_drawing
from mnist_models.store.checkpoints import CheckpointError, load_checkpoint
from mnist_models.timing import percentiles

GOAL_MS = 20.0  # one drawing through all the models, preprocessing included
EVALUATION_GOAL_S = 20.0  # every shipped model evaluated on the 10,000 test images
SINGLE_WARMUP = 5  # first calls allocate and pick kernels
BATCH_WARMUP = 1
QUICK_EVALUATION_IMAGES = 500


def time_ms(call: Callable[[], object], runs: int, warmup: int) -> list[float]:
    return time_alternating({"call": call}, runs, warmup)["call"]


def time_alternating(calls: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds per call of each of ``calls``, taking turns run by run: a burst of load from other work on the
    machine then slows each alike instead of whichever happened to be running."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - start) * 1000)
    return samples


def drawn_canvas() -> np.ndarray:
    """What the drawing canvas hands over: 280x280 RGBA, opaque black, one white vertical stroke (a '1')."""
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)
    canvas[..., 3] = 255
    canvas[50:230, 130:150] = 255
    return canvas


def load_models(untrained_if_missing: bool):
    """({name: (network, 'checkpoint' | 'untrained')}, {name: why its checkpoint could not be used}); untrained
    networks get channels-last weights, as load_checkpoint gives the others."""
    models, missing = {}, {}
    for name in MODEL_NAMES:
        try:
            models[name] = (load_checkpoint(name)[0], "checkpoint")
        except CheckpointError as error:
            missing[name] = str(error)
            if untrained_if_missing:
                models[name] = (get_spec(name).build().to(memory_format=torch.channels_last).eval(), "untrained")
    return models, missing


def before_and_after(network, one_image: np.ndarray, batch: torch.Tensor, single_runs: int, batch_runs: int
                     ) -> dict[str, dict[str, dict[str, float]]]:
    """{"before" | "after": {"single_ms", "batch_ms"}}: the plain path (a copy of the module in PyTorch's default
    memory format, the whole batch in one forward pass) against ``network`` through predict_proba's own chunks."""
    plain = copy.deepcopy(network).to(memory_format=torch.contiguous_format)
    single = time_alternating({"before": partial(predict_proba, plain, one_image),
                               "after": partial(predict_proba, network, one_image)}, single_runs, SINGLE_WARMUP)
    batched = time_alternating({"before": partial(predict_proba, plain, batch, len(batch)),
                                "after": partial(predict_proba, network, batch)}, batch_runs, BATCH_WARMUP)
    return {way: {"single_ms": percentiles(single[way]).to_dict(), "batch_ms": percentiles(batched[way]).to_dict()}
            for way in ("before", "after")}


def evaluation_seconds(names: list[str], test_data: tuple[torch.Tensor, torch.Tensor], validation_size: int | None
                       ) -> dict[str, float]:
    """Seconds per shipped model for what `digit-lab evaluate` does with it, writing the file aside;
    ``validation_size`` cuts the validation digits short (the smoke run)."""
    seconds = {}
    for name in names:
        start = time.perf_counter()
        network, meta = load_checkpoint(name)
        validation = validation_images(meta)
        evaluate(network, meta, test_data, meta.path, latency=True,
                 validation_data=validation[:validation_size] if validation is not None else ())
        seconds[name] = time.perf_counter() - start
    return seconds


def _before_after(row: dict, figures: str, statistic: str, digits: int) -> str:
    return f"{row['before'][figures][statistic]:.{digits}f} → {row[figures][statistic]:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--single-runs", type=int, help="timed one-image calls per model and way (default 100; 10 "
                                                        "quick)")
    parser.add_argument("--batch-runs", type=int, help="timed batch calls per model and way (default 10; 2 quick)")
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

    test_images, test_labels = load_mnist("test")
    one_image = test_images[0].numpy()  # a uint8 28x28 array, as preprocess_drawing returns
    batch = test_images[:batch_size]
    per_model = {}
    for name, (network, source) in models.items():
        ways = before_and_after(network, one_image, batch, single_runs, batch_runs)
        per_model[name] = {"source": source, **ways["after"], "before": ways["before"]}

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

    evaluated = [name for name, (_, source) in models.items() if source == "checkpoint"]
    size = QUICK_EVALUATION_IMAGES if args.quick else None
    seconds = evaluation_seconds(evaluated, (test_images[:size], test_labels[:size]), size)
    evaluation = {"test_images": len(test_images[:size]), "seconds": seconds, "total_s": sum(seconds.values()),
                  "goal_s": EVALUATION_GOAL_S}

    print(f"\npredict_proba latency in ms, before → after ({single_runs} one-image calls, {batch_runs} calls of "
          f"{len(batch)} images, each way)")
    print(format_table(
        ["model", "weights", "1 image p50", "p95", f"{len(batch)} images p50", "p95", "speed-up", "evaluate s"],
        [[name, row["source"], _before_after(row, "single_ms", "p50_ms", 2),
          _before_after(row, "single_ms", "p95_ms", 2), _before_after(row, "batch_ms", "p50_ms", 1),
          _before_after(row, "batch_ms", "p95_ms", 1),
          f"{row['before']['batch_ms']['p50_ms'] / row['batch_ms']['p50_ms']:.1f}x",
          f"{seconds[name]:.1f}" if name in seconds else "-"] for name, row in per_model.items()]))
    median = drawing["total_ms"]["p50_ms"]
    print(f"\none drawing: preprocess_drawing + predict_proba with {len(models)} model(s), {drawing_runs} runs: "
          f"median {median:.2f} ms, p95 {drawing['total_ms']['p95_ms']:.2f} ms "
          f"(preprocessing alone: median {drawing['preprocess_ms']['p50_ms']:.2f} ms)")
    if len(models) == len(MODEL_NAMES):
        verdict = "within" if median <= GOAL_MS else "OVER"
        print(f"all {len(MODEL_NAMES)} models: median {median:.2f} ms vs goal {GOAL_MS:.0f} ms: {verdict} the goal")
    else:
        print(f"not the all-models figure: {len(MODEL_NAMES) - len(models)} model(s) missing "
              f"({', '.join(name for name in MODEL_NAMES if name not in models)}); the goal is {GOAL_MS:.0f} ms")
    verdict = "within" if evaluation["total_s"] <= EVALUATION_GOAL_S else "OVER"
    print(f"evaluating {len(seconds)} shipped model(s) on {evaluation['test_images']:,} test images: "
          f"{evaluation['total_s']:.1f} s vs goal {EVALUATION_GOAL_S:.0f} s: {verdict} the goal")
    if args.json:
        write_json(args.json, {"benchmark": "inference_latency", "environment": info, "unit": "ms",
                               "single_runs": single_runs, "batch_runs": batch_runs, "batch_size": len(batch),
                               "chunk_size": BATCH_SIZE,
                               "missing_checkpoints": missing, "models": per_model, "drawing_all_models": drawing,
                               "evaluation": evaluation})


if __name__ == "__main__":
    main()
