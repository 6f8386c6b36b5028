"""Training time to 99.0% MNIST test accuracy on the CPU: our `cnn` next to the PyTorch examples' MNIST recipe.

Ours: TrainConfig.for_model("cnn", recipe="fast", device="cpu") on the 55,000 training images that train() keeps
after its validation split, once per --epochs value (1 and 2 by default; the one-cycle schedule is fitted to the run's
length, so each is a run of its own). Reported: TrainResult.train_time_s (training steps plus one 5,000-image
validation pass per epoch), the same without the validation passes (from the progress events), and the final model's
accuracy on the 10,000 test images.

Reference: github.com/pytorch/examples mnist/main.py: its Net (conv 32, conv 64, max-pool, dropout 0.25, dense 128,
dropout 0.5, log-softmax), Adadelta(lr=1.0), StepLR(step_size=1, gamma=0.7), batch 64, seed 1, torchvision's MNIST
with ToTensor + Normalize((0.1307,), (0.3081,)) through a DataLoader (shuffle=True as the example sets it on an
accelerator, num_workers=0 for a small CPU). It is tested on the whole test set (batches of 1000) every --eval-every
batches and at each epoch's end, and stops at the first test at >= 99.0% or after --max-epochs. Its clock covers the
training loop only (batch loading included, testing excluded), and the time reported is the clock at the first test at
>= 99.0%: an overstatement of the true crossing by at most --eval-every batches of training.

The ratio is the reference's time to 99.0% over ours' train_time_s, per epochs value; ``--repeats`` runs everything
again (seeds 0, 1, ... for ours; 1, 2, ... for the reference) and the summary shows medians.

Run from the repository root (quiet machine for real figures; --quick is a smoke run on one torch thread: ours on
5,000 images, the reference stopped after 40 batches and tested once, on all 10,000 test images):

    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_time_to_99 [--json time_to_99.json]
    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_time_to_99 --quick
    ... --epochs 1 2 3 --repeats 3 --eval-every 100 --max-epochs 5 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from benchmarks.common import (
    add_threads_option,
    apply_threads,
    environment,
    format_table,
    print_environment,
    write_json,
)
from mnist_models.data import load_mnist
from mnist_models.paths import resolve_data_root
from mnist_models.training.config import RECIPES, TrainConfig
from mnist_models.training.loop import Progress, evaluate_loss_accuracy, train


def run_ours(epochs: int, train_subset: int | None, seed: int, train_data, test_data) -> dict[str, Any]:
    """One run of the 'fast' recipe for ``epochs`` epochs: times and final test accuracy."""
    config = TrainConfig.for_model("cnn", recipe="fast", epochs=epochs, train_subset=train_subset,
                                   device="cpu", seed=seed)
    validation_s, last_batch_s = 0.0, 0.0

    def on_progress(event: Progress) -> None:
        nonlocal validation_s, last_batch_s
        if event.kind == "batch":
            last_batch_s = event.elapsed_s
        else:  # an epoch's event follows its validation pass
            validation_s += event.elapsed_s - last_batch_s

    result = train(config, progress=on_progress, data=train_data)
    _, accuracy = evaluate_loss_accuracy(result.network, *test_data)
    return {"epochs": epochs, "seed": seed, "train_time_s": result.train_time_s,
            "train_time_excl_validation_s": result.train_time_s - validation_s, "test_accuracy": accuracy}


class Net(nn.Module):
    """pytorch/examples mnist/main.py's network, layer for layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = self.dropout2(F.relu(self.fc1(torch.flatten(x, 1))))
        return F.log_softmax(self.fc2(x), dim=1)


@torch.no_grad()
def test_accuracy(network: nn.Module, test_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    network.eval()
    correct = sum((network(data).argmax(1) == target).sum().item() for data, target in test_batches)
    network.train()
    return correct / sum(len(target) for _, target in test_batches)


def run_reference(target: float, eval_every: int, max_epochs: int, max_batches: int | None, seed: int
                  ) -> dict[str, Any]:
    """The example's training until the first test at ``target``; every test as (clock, batches, accuracy)."""
    torch.manual_seed(seed)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    root = str(resolve_data_root())
    train_loader = DataLoader(datasets.MNIST(root, train=True, download=False, transform=transform),
                              batch_size=64, shuffle=True, num_workers=0)
    # The test set is decoded once, outside the clock; each test then sees exactly the loader's batches of 1000.
    test_batches = list(DataLoader(datasets.MNIST(root, train=False, download=False, transform=transform),
                                   batch_size=1000))
    network = Net()
    optimizer = optim.Adadelta(network.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    clock, done, tests = 0.0, 0, []

    def result() -> dict[str, Any]:
        first = next((test for test in tests if test["accuracy"] >= target), None)
        return {"seed": seed, "reached": first is not None, "time_to_target_s": first and first["train_s"],
                "batches": done, "best_accuracy": max(test["accuracy"] for test in tests), "train_s": clock,
                "tests": tests}

    for _ in range(max_epochs):
        network.train()
        tick = time.perf_counter()
        for index, (data, labels) in enumerate(train_loader, 1):
            optimizer.zero_grad()
            loss = F.nll_loss(network(data), labels)
            loss.backward()
            optimizer.step()
            clock += time.perf_counter() - tick
            done += 1
            if done % eval_every == 0 or index == len(train_loader) or done == max_batches:
                tests.append({"train_s": clock, "batches": done, "accuracy": test_accuracy(network, test_batches)})
                if tests[-1]["accuracy"] >= target or done == max_batches:
                    return result()
            tick = time.perf_counter()
        scheduler.step()
    return result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2], help="ours: epochs per run (default 1 2)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of everything; medians are shown (default 1)")
    parser.add_argument("--target", type=float, default=0.99, help="test accuracy to reach (default 0.99)")
    parser.add_argument("--eval-every", type=int, help="reference: test after this many batches (default 200)")
    parser.add_argument("--max-epochs", type=int, default=3, help="reference: give up after this many (default 3)")
    parser.add_argument("--max-batches", type=int, help="reference: give up after this many batches (default none)")
    parser.add_argument("--train-subset", type=int, help="ours: train on this many images (default all)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: ours on 5000 images, the reference for 40 batches, tested once")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    add_threads_option(parser)
    args = parser.parse_args()
    apply_threads(args.threads, args.quick)
    eval_every = args.eval_every or (40 if args.quick else 200)
    max_batches = args.max_batches or (40 if args.quick else None)
    train_subset = args.train_subset or (5000 if args.quick else None)

    info = environment()
    print_environment(info)
    train_data, test_data = load_mnist("train"), load_mnist("test")
    ours: dict[int, list[dict[str, Any]]] = {epochs: [] for epochs in args.epochs}
    reference: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        for epochs in args.epochs:
            run = run_ours(epochs, train_subset, repeat, train_data, test_data)
            ours[epochs].append(run)
            print(f"  ours, {epochs} epoch(s), seed {repeat}: {run['train_time_s']:.1f} s, "
                  f"test accuracy {run['test_accuracy']:.2%}", flush=True)
        run = run_reference(args.target, eval_every, args.max_epochs, max_batches, seed=1 + repeat)
        reference.append(run)
        print(f"  reference, seed {run['seed']}: "
              + (f"{args.target:.1%} after {run['time_to_target_s']:.1f} s ({run['batches']} batches)" if run["reached"]
                 else f"not reached; best {run['best_accuracy']:.2%} in {run['train_s']:.1f} s "
                      f"({run['batches']} batches)"), flush=True)

    summary = {epochs: {key: statistics.median(run[key] for run in runs)
                        for key in ("train_time_s", "train_time_excl_validation_s", "test_accuracy")}
               for epochs, runs in ours.items()}
    subset_note = f", {train_subset} training images" if train_subset else ""
    print(f"\nours: cnn, 'fast' recipe{subset_note}, median of {args.repeats} run(s)")
    print(format_table(["epochs", "train_time_s", "excl. validation", "test accuracy", f">= {args.target:.1%}"],
                       [[epochs, f"{row['train_time_s']:.1f}", f"{row['train_time_excl_validation_s']:.1f}",
                         f"{row['test_accuracy']:.2%}", "yes" if row["test_accuracy"] >= args.target else "no"]
                        for epochs, row in summary.items()]))

    reached = [run["time_to_target_s"] for run in reference if run["reached"]]
    print(f"\nreference: pytorch/examples MNIST recipe, tested every {eval_every} batches")
    if reached:
        reference_s = statistics.median(reached)
        print(f"time to {args.target:.1%}: {reference_s:.1f} s (median; reached in {len(reached)} of "
              f"{len(reference)} run(s))")
        for epochs, row in summary.items():
            caveat = "" if row["test_accuracy"] >= args.target else f" (ours ended at {row['test_accuracy']:.2%})"
            print(f"ratio reference/ours, {epochs} epoch(s): {reference_s / row['train_time_s']:.2f}x{caveat}")
    else:
        longest = max(run["train_s"] for run in reference)
        print(f"{args.target:.1%} not reached; best {max(run['best_accuracy'] for run in reference):.2%} "
              f"in {longest:.1f} s of training, so no ratio")
    if args.json:
        write_json(args.json, {"benchmark": "time_to_99", "environment": info, "target": args.target,
                               "ours": {"model": "cnn", "recipe": RECIPES["fast"], "train_subset": train_subset,
                                        "runs": ours, "medians": summary},
                               "reference": {"source": "github.com/pytorch/examples mnist/main.py",
                                             "eval_every": eval_every, "max_epochs": args.max_epochs,
                                             "max_batches": max_batches, "runs": reference,
                                             "median_time_to_target_s": statistics.median(reached) if reached
                                             else None}})


if __name__ == "__main__":
    main()
