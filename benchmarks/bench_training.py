"""Training throughput (images/s) of every registered model on this machine's CPU.

Each model trains one epoch of its registry recipe (batch size, optimiser, augmentation where the recipe has it) on
the first N training images, from scratch: MobileNet runs with weights="none", so nothing is downloaded and every
model starts from the same kind of random initialisation. The rate counts the training steps only: it is the
images/s of the epoch's last 'batch' progress event, which train() sends before the validation pass. Each model first
trains one untimed warm-up run on a few images (one-off kernel selection and allocation), then ``--repeats`` timed
runs; the table shows their median, min and max.

Run from the repository root (quiet machine for real figures; --quick is a smoke run: 640 images, one repeat, one
torch thread):

    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_training [--json training.json]
    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_training --quick
    ... --models cnn mlp --subset 8192 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.common import (
    add_threads_option,
    apply_threads,
    environment,
    format_table,
    print_environment,
    write_json,
)
from mnist_models.data import load_mnist
from mnist_models.models.pretrained import FROM_SCRATCH
from mnist_models.models.registry import MODEL_NAMES, get_spec
from mnist_models.training.config import TrainConfig
from mnist_models.training.loop import Progress, train

# Validation runs after the measured window, so a small split only saves time; it does not change the figure.
VALIDATION_SIZE = 256
# The warm-up's size: five batches of 128, the fewest that OneCycleLR (25% warm-up phase) accepts.
WARMUP_IMAGES = 640


def training_rate(name: str, subset: int, seed: int, data) -> float:
    """Images/s of one single-epoch run of ``name``'s recipe, training steps only."""
    config = TrainConfig.for_model(name, epochs=1, train_subset=subset, device="cpu", seed=seed,
                                   validation_size=VALIDATION_SIZE,
                                   weights=FROM_SCRATCH if get_spec(name).pretrained_variants else None)
    batch_events: list[Progress] = []

    def on_progress(event: Progress) -> None:
        if event.kind == "batch":
            batch_events.append(event)

    train(config, progress=on_progress, data=data)
    return batch_events[-1].images_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES))
    parser.add_argument("--subset", type=int, help="training images per run (default 4096; 640 with --quick)")
    parser.add_argument("--repeats", type=int, help="runs per model (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sizes")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    add_threads_option(parser)
    args = parser.parse_args()
    apply_threads(args.threads, args.quick)
    subset = args.subset or (WARMUP_IMAGES if args.quick else 4096)
    repeats = args.repeats or (1 if args.quick else 3)
    if subset < WARMUP_IMAGES:
        parser.error(f"--subset must be at least {WARMUP_IMAGES}: OneCycleLR fails on fewer than five batches")

    info = environment()
    print_environment(info)
    print(f"one epoch of each model's recipe on {subset} training images, "
          f"{repeats} timed run(s) each after a warm-up\n")
    data = load_mnist("train")
    results = {}
    for name in dict.fromkeys(args.models):
        training_rate(name, WARMUP_IMAGES, 0, data)
        rates = [training_rate(name, subset, seed, data) for seed in range(repeats)]
        results[name] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": rates}
        print(f"  {name}: {', '.join(f'{rate:,.0f}' for rate in rates)} images/s", flush=True)

    print()
    print(format_table(["model", "images/s (median)", "min", "max"],
                       [[name, f"{row['median']:,.0f}", f"{row['min']:,.0f}", f"{row['max']:,.0f}"]
                        for name, row in results.items()]))
    if args.json:
        write_json(args.json, {"benchmark": "training_throughput", "environment": info, "train_subset": subset,
                               "repeats": repeats, "unit": "images/s", "models": results})


if __name__ == "__main__":
    main()
