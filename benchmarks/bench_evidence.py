"""Time and size of the evidence (robustness curves, calibration with selective prediction, the map of the digits) for
every shipped model: what `digit-lab evaluate` adds to an evaluation, against its goals of 10 minutes for all the
shipped models on this 2-core machine and 20 MB of saved files in all.

Each model's checkpoint is copied to a temporary folder and ``mnist_models.evaluation.refresh_evidence`` computes
each part there in turn, timed on its own (the shipped files are not touched); the files it writes are measured.
Run from the repository root (--quick: two models, 500 test digits, a smaller map; a smoke run):

    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_evidence --json benchmarks/results/evidence.json
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import environment, format_table, print_environment, write_json
from mnist_models.data import load_mnist
from mnist_models.evaluation import EVIDENCE_PARTS, refresh_evidence, validation_split
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.store.checkpoints import checkpoint_path, load_checkpoint

TIME_GOAL_S = 600.0
SIZE_GOAL_MB = 20.0
QUICK_MODELS = ("mlp", "cnn_basic")


def measure(name: str, folder: Path, test_data, count: int | None) -> dict:
    """Seconds for each part of one model's evidence, and the bytes of the files written."""
    shutil.copy(checkpoint_path(name), folder / f"{name}.pt")
    network, meta = load_checkpoint(folder / f"{name}.pt")
    validation = validation_split(meta)
    if count is not None:
        test_data = tuple(part[:count] for part in test_data)
        validation = tuple(part[:count] for part in validation) if validation is not None else None
    seconds = {}
    for part in EVIDENCE_PARTS:
        started = time.perf_counter()
        refresh_evidence(network, meta, test_data, validation, [part])
        seconds[part] = round(time.perf_counter() - started, 2)
    written = {path.name: path.stat().st_size for path in folder.glob(f"{name}.*") if path.suffix != ".pt"}
    return {"seconds": seconds, "total_s": round(sum(seconds.values()), 2), "bytes": written,
            "total_bytes": sum(written.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: two models on 500 test digits")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    info = environment()
    print_environment(info)
    test_data = load_mnist("test", download=False)
    names, count = (QUICK_MODELS, 500) if args.quick else (MODEL_NAMES, None)
    with tempfile.TemporaryDirectory() as folder:
        models = {name: measure(name, Path(folder), test_data, count) for name in names}
    total_s = round(sum(model["total_s"] for model in models.values()), 1)
    total_mb = round(sum(model["total_bytes"] for model in models.values()) / 1e6, 2)
    print(format_table(["model", *EVIDENCE_PARTS, "total", "files"],
                       [[name, *(f"{model['seconds'][part]:.1f} s" for part in EVIDENCE_PARTS),
                         f"{model['total_s']:.1f} s", f"{model['total_bytes'] / 1e3:,.0f} KB"]
                        for name, model in models.items()]))
    print(f"all {len(models)} models: {total_s:.0f} s (goal {TIME_GOAL_S:.0f} s), {total_mb:.2f} MB of files "
          f"(goal {SIZE_GOAL_MB:.0f} MB)")
    if args.json:
        write_json(args.json, {"environment": info, "test_digits": count or len(test_data[1]), "models": models,
                               "total_s": total_s, "total_mb": total_mb, "time_goal_s": TIME_GOAL_S,
                               "size_goal_mb": SIZE_GOAL_MB})


if __name__ == "__main__":
    main()
