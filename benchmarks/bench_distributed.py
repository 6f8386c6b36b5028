"""Data-parallel training throughput (images/s): one process against torchrun with 2 processes, on this machine's CPU.

Three setups: a single process (no torchrun) with 1 and with 2 torch threads, and ``torchrun --standalone
--nproc-per-node 2`` with 1 thread per rank (gloo on loopback), so the 2-thread and the 2-process figures use the same
cores. They are launched in turns, ``--repeats`` rounds, so a change in the machine's load reaches all three alike.
In each launch the model's recipe trains one untimed warm-up epoch on 640 images, then one timed epoch on
``--subset`` images with the same global batch; the rate counts the training steps only (the epoch's last 'batch'
progress event, sent before the validation pass), over all ranks.
With two cores, expect little gain: the point of the 2-process run here is that it works, not its speed.

Run from the repository root:

    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_distributed [--json FILE]
    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_distributed --quick
    ... --model speedrun --subset 2048 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import environment, format_table, print_environment, write_json
from mnist_models.data import load_mnist
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.paths import REPO_ROOT
from mnist_models.training import distributed
from mnist_models.training.config import TrainConfig
from mnist_models.training.loop import Progress, train

VALIDATION_SIZE = 256  # validated after the measured window: a small split only saves time
WARMUP_IMAGES = 640
SETUPS = ((1, 1), (1, 2), (2, 1))  # (processes, torch threads per process)


def worker(model: str, subset: int, out: Path) -> None:
    """One launch's measurement (every rank runs this; rank 0 writes the rate to ``out``)."""
    team = distributed.join("cpu")
    data = load_mnist("train")
    batch_events: list[Progress] = []

    def on_progress(event: Progress) -> None:
        if event.kind == "batch":
            batch_events.append(event)

    for images in (WARMUP_IMAGES, subset):
        config = TrainConfig.for_model(model, epochs=1, train_subset=images, device="cpu",
                                       validation_size=VALIDATION_SIZE)
        train(config, progress=on_progress, data=data)
    if team.is_main:
        out.write_text(json.dumps({"rate": batch_events[-1].images_per_s, "batch_size": config.batch_size}))


def measure(processes: int, threads: int, model: str, subset: int) -> dict:
    """Launch one setup once: its rate and global batch."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rates.json"
        launcher = (["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
                    if processes > 1 else [])
        command = [sys.executable, *launcher, "-m", "benchmarks.bench_distributed", "--worker", "--model", model,
                   "--subset", str(subset), "--out", str(out)]
        subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, check=True,
                       timeout=1800)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODEL_NAMES, help="default cnn; speedrun with --quick")
    parser.add_argument("--subset", type=int, help=f"training images per timed epoch (default 4096; {WARMUP_IMAGES} "
                                                   f"with --quick)")
    parser.add_argument("--repeats", type=int, help="timed epochs per setup (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sizes")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.model = args.model or ("speedrun" if args.quick else "cnn")
    args.subset = args.subset or (WARMUP_IMAGES if args.quick else 4096)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.worker:
        worker(args.model, args.subset, args.out)
        return

    info = environment()
    print_environment(info)
    print(f"{args.model}'s recipe, one epoch on {args.subset} training images after a warm-up, the setups in turns, "
          f"{args.repeats} round(s)\n")
    runs: dict[tuple[int, int], list[float]] = {setup: [] for setup in SETUPS}
    for round_ in range(1, args.repeats + 1):
        for processes, threads in SETUPS:
            measured = measure(processes, threads, args.model, args.subset)
            runs[processes, threads].append(measured["rate"])
            print(f"  round {round_}: {processes} process(es) × {threads} thread(s): {measured['rate']:,.0f} "
                  f"images/s", flush=True)
    results = [{"processes": processes, "threads_per_process": threads, "batch_size": measured["batch_size"],
                "median": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": rates}
               for (processes, threads), rates in runs.items()]
    baseline = results[0]["median"]
    print()
    print(format_table(["setup", "images/s (median)", "min", "max", "vs 1 × 1"],
                       [[f"{row['processes']} process(es) × {row['threads_per_process']} thread(s)",
                         f"{row['median']:,.0f}", f"{row['min']:,.0f}", f"{row['max']:,.0f}",
                         f"{row['median'] / baseline:.2f}×"] for row in results]))
    if args.json:
        write_json(args.json, {"benchmark": "distributed_training", "environment": info, "model": args.model,
                               "train_subset": args.subset, "repeats": args.repeats, "unit": "images/s",
                               "torch_threads_note": "per process, set through OMP_NUM_THREADS",
                               "cuda_nccl": "untested: no GPU was lent to this measurement", "setups": results})


if __name__ == "__main__":
    main()
