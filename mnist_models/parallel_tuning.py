"""Several worker processes searching one Optuna study at once on one machine (``digit-lab tune --workers N``).

Each worker is a fresh (spawned) Python process: it opens the study itself, loads the training images and runs its
share of the trials through ``run_study`` with its share of the cores. The storage is all they share, and Optuna
gives every trial number to one process only: a journal file (the default, ``studies.journal`` in the runs folder) or
a database server, which other machines can run workers against too. SQLite is refused: it is not made for several
writers. Each worker's sampler has its own seed, so their random start-up draws differ; TPE's constant liar (Optuna's
default) keeps workers from proposing what another is already trying.

The parent holds the machine's training lock for them all (workers never take it) and passes a stop (SIGTERM,
Ctrl-C) on to every worker: each fails its trial in progress and ends, and the study keeps the rest.
"""

from __future__ import annotations

import multiprocessing
import sys
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import cast

from .training.loop import CancelFlag

WORKER_SEED_STRIDE = 1_000_003  # worker k's sampler seed: the study's seed + k × this (apart from any resumed offset)
POLL_S = 0.2


@dataclass(frozen=True)
class WorkerOrder:
    """What one worker process runs: everything ``run_study`` takes, by value (it crosses a process boundary)."""

    index: int
    model: str
    study_name: str | None
    storage: str  # a URL, as ``tuning.storage_url`` makes it
    data_dir: str | None
    trials: int | None
    timeout_s: float | None
    max_epochs: int | None
    train_subset: int | None
    seed: int
    device: str
    threads: int


def shares(trials: int | None, workers: int) -> list[int | None]:
    """``trials`` split between ``workers`` as evenly as possible, the total kept (None: each runs until its
    timeout). Workers with no share are not started."""
    if trials is None:
        return [None] * workers
    return [share for index in range(workers) if (share := trials // workers + (index < trials % workers))]


def check_shared(url: str) -> None:
    """A ValueError when several processes cannot write the storage at ``url`` at once."""
    if url.startswith("sqlite:"):
        raise ValueError("several workers need a storage that many processes can write at once: a .journal file "
                         "(the default with --workers) or a database server URL such as postgresql://, not SQLite")


def run_workers(orders: list[WorkerOrder], stop: CancelFlag) -> list[int]:
    """Run one process per order and wait for all of them; returns their exit codes (0 each when all went well).
    Once ``stop`` is set every worker still running gets SIGTERM. A KeyboardInterrupt here (the second Ctrl-C) kills
    them at once."""
    context = multiprocessing.get_context("spawn")  # no fork of a process with torch's threads running
    processes = [context.Process(target=_work, args=(order,), name=f"tune-worker-{order.index}") for order in orders]
    for process in processes:
        process.start()
    try:
        stopping = False
        while any(process.is_alive() for process in processes):
            if stop.is_set() and not stopping:
                stopping = True
                for process in processes:
                    if process.is_alive():
                        process.terminate()  # SIGTERM: the worker's own stop request, as in the parent
            wait([process.sentinel for process in processes if process.is_alive()], timeout=POLL_S)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()
    return [cast(int, process.exitcode) for process in processes]  # each was joined above, so it has one


def _work(order: WorkerOrder) -> None:
    """A worker process's main function: its trials of the study, one line on stderr for each."""
    import optuna
    import torch

    from .data import load_mnist
    from .training.stopping import StopRequest, stop_on_signals
    from .tuning import describe_trial, open_study, run_study

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the line per trial below instead, as ``tune`` prints
    torch.set_num_threads(order.threads)
    stop = StopRequest()
    with stop_on_signals(stop, second_interrupt_aborts=False):  # the parent kills on a second Ctrl-C
        study = open_study(order.model, order.study_name, order.storage,
                           order.seed + order.index * WORKER_SEED_STRIDE)
        train_data = load_mnist("train", order.data_dir, download=False)  # the parent has made sure it is there
        run_study(study, train_data, trials=order.trials, timeout_s=order.timeout_s, max_epochs=order.max_epochs,
                  train_subset=order.train_subset, seed=order.seed, device=order.device, cancel=stop,
                  on_trial=lambda trial: print(f"worker {order.index}: {describe_trial(trial)}", file=sys.stderr,
                                               flush=True))
