"""Data-parallel training across processes: ``torchrun --nproc-per-node N -m mnist_models train ...`` trains one model
with PyTorch's DistributedDataParallel (gloo on CPUs, NCCL on CUDA GPUs); without torchrun nothing here is active and
training runs as a single process, as before.

How the work is split (the scaling rule): the global batch stays the configured batch size, and so does the learning
rate. Every rank draws the same per-epoch permutation from the seed, cuts it into the same global batches, and trains
on its contiguous share of each (per-rank batch = global batch / world size; when that does not divide, the first
ranks take one image more). Each rank's mean loss is weighted by its share of the global batch times the world size, so
DDP's gradient average is exactly the single-process gradient of the whole global batch. What still differs from one
process: batch norm normalises each rank's share with that share's statistics (its running statistics are rank 0's,
which DDP broadcasts before every forward), dropout draws per rank, and the floating-point order of the sums. A final
global batch with fewer images than there are ranks is dropped, so no rank trains on an empty share. With
augmentation on, every rank augments the whole global batch and keeps its share: the draws then match a single
process's and the shared generator stays in step on every rank (it also orders the next epoch).

Only rank 0 reports progress, validates (the figures are broadcast, so every rank records the same), writes the
per-epoch partial file and saves and evaluates the checkpoint through the usual pipeline. The machine-wide training
lock is taken by each machine's local rank 0, and a refusal ends every rank. The ranks agree on a stop request before
every batch, so they stop together and rank 0 saves the finished epochs as a cancelled run. The first rank whose
training fails records its reason in torchrun's error file (the launcher prints it with the rank as the root cause)
and exits non-zero; torchrun then stops the others. No checkpoint is written; finished epochs stay in the partial file.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar, cast

import torch
import torch.distributed as dist
from torch import nn

from ..devices import resolve_device
from .locking import TrainingBusy, acquire_training_lock

DRILL_ENV = "DIGIT_LAB_DRILL_FAIL_RANK"
"""A failure drill: ``R`` makes rank R raise at its second batch, ``R:kill`` makes it SIGKILL itself there (the tests
use it to check how a lost rank ends the job)."""
DRILL_BATCH = 2
LATER_FAILURE_WAIT_S = 3

T = TypeVar("T")


def launched() -> bool:
    """Whether a launcher (torchrun, or anything setting the env:// variables) started this process as one rank."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


@dataclass(frozen=True)
class Team:
    """The processes training together, as this rank sees them; a team of one when not launched by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def label(self) -> str:
        """' on rank R of N' for messages, '' for a single process."""
        return f" on rank {self.rank} of {self.world_size}" if self.distributed else ""

    def wrap(self, network: nn.Module, device: torch.device) -> nn.Module:
        """The module the training steps call: ``network`` wrapped in DDP, or ``network`` itself. Each rank's global
        generator is then reseeded with its rank, so dropout masks differ between ranks."""
        if not self.distributed:
            return network
        torch.manual_seed(torch.initial_seed() + self.rank)
        return nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index if device.index is not None else torch.cuda.current_device()]
            if device.type == "cuda" else None)

    def batches(self, images: int, batch_size: int) -> int:
        """Global batches per epoch: all of them, less a last one too small to give every rank an image."""
        full, rest = divmod(images, batch_size)
        return full + (rest >= self.world_size)

    def share(self, count: int) -> tuple[slice, float]:
        """This rank's positions in a global batch of ``count`` images, and the weight of its mean loss that makes
        DDP's averaged gradient the global batch's (1.0 for a single process)."""
        if not self.distributed:
            return slice(None), 1.0
        base, extra = divmod(count, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        size = base + (self.rank < extra)
        return slice(start, start + size), self.world_size * size / count

    def should_stop(self, cancel, batch: int) -> bool:
        """Whether to stop before ``batch`` (1-based): the cancel flag, agreed by all ranks before every batch so
        they stop together (a rank that stopped alone would leave the others waiting in DDP). One all-reduce of one
        number per batch: far below a step's time on CPUs; on GPUs it also waits for the previous step."""
        self._drill(batch)
        requested = cancel is not None and cancel.is_set()
        if not self.distributed:
            return requested
        flag = torch.tensor(int(requested), device=self._device())
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def total(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the ranks (in place)."""
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor

    def from_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` as rank 0 computed it, on every rank (only rank 0 computes)."""
        if not self.distributed:
            return compute()
        box = [compute() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return cast(T, box[0])  # broadcast_object_list put rank 0's result in every rank's box

    @contextlib.contextmanager
    def training_lock(self, holder: str) -> Iterator[None]:
        """The machine-wide training lock, held by each machine's local rank 0 for the job; TrainingBusy on every
        rank when any machine's is taken."""
        if not self.distributed:
            with acquire_training_lock(holder):
                yield
            return
        lock, refusal = None, None
        if self.local_rank == 0:
            try:
                lock = acquire_training_lock(f"{holder}, rank {self.rank} of {self.world_size}")
            except TrainingBusy as error:
                refusal = str(error)
        refusals: list[str | None] = [None] * self.world_size
        dist.all_gather_object(refusals, refusal)
        try:
            for text in refusals:
                if text is not None:
                    raise TrainingBusy(text)
            yield
        finally:
            if lock is not None:
                lock.close()

    def fail(self, error: BaseException) -> None:
        """Before this rank exits on ``error`` (call it while handling it): the job's first failing rank writes its
        reason to torchrun's error file, which the launcher's summary shows with the rank as the root cause; a rank
        failing after it (typically because it lost that peer mid-collective) waits LATER_FAILURE_WAIT_S instead, so
        the launcher sees the first one exit first."""
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        if self._failures_so_far() == 1:
            ErrorHandler().record_exception(error)
        else:
            time.sleep(LATER_FAILURE_WAIT_S)

    def _failures_so_far(self) -> int:
        """Count this failure in the job's store (the launcher's, which outlives the ranks): 1 for the first."""
        try:
            store = dist.distributed_c10d._get_default_store()
            store.set_timeout(datetime.timedelta(seconds=5))
            return store.add(f"digit-lab/failures/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", 1)
        except (RuntimeError, ValueError):  # no store to count in: report this failure as the cause
            return 1

    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def _drill(self, batch: int) -> None:
        rank, _, how = os.environ.get(DRILL_ENV, "").partition(":")
        if self.distributed and batch == DRILL_BATCH and rank == str(self.rank):
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"failure drill ({DRILL_ENV}={rank})")


SOLO = Team()


def current() -> Team:
    """The team of the process group this process joined, or a team of one."""
    if not (dist.is_available() and dist.is_initialized()):
        return SOLO
    return Team(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_backend())


def join(device: str | None) -> Team:
    """Join the launcher's process group (NCCL when training on CUDA, one GPU per local rank; gloo otherwise), or
    return a team of one when no launcher started this process. The group is destroyed when the process exits."""
    if not launched() or dist.is_initialized():
        return current()
    if resolve_device(device).type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend)
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return current()
