"""Training on whole tensors: seeded, reproducible, observable through progress events, and cancellable.

The training images live on the device as one uint8 tensor; each step indexes a batch, converts, optionally
augments and normalises it in one go. A callback sees per-batch and per-epoch progress; a cancel flag (anything with
``is_set()``, e.g. ``threading.Event``) or Ctrl-C stops the run and keeps the finished epochs: their history, and
the weights as they were at the end of the last one, so a cancelled model matches its history.

After every epoch ``on_epoch`` receives a ``TrainingState``: everything needed to continue from there (``resume``),
with the same batches, learning rates and random draws as if the run had never stopped.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..data import (
    augment_batch,
    for_dataset,
    load_dataset,
    normalize,
    room_augment_batch,
    split_train_validation,
    tensor_checksum,
    to_unit_float,
)
from ..devices import resolve_device
from ..models.architectures import MobileNetDigits
from ..models.pretrained import FROM_SCRATCH, load_pretrained_state
from ..models.registry import get_spec
from . import distributed
from .config import ADAM_OPTIMIZERS, TrainConfig

ONE_CYCLE_MIN_STEPS = 8


@dataclass(frozen=True)
class Progress:
    """One progress report: 'batch' every few batches, 'epoch' after each epoch's validation."""

    kind: Literal["batch", "epoch"]
    epoch: int  # 1-based
    epochs: int
    batch: int  # batches done in this epoch
    batches: int
    loss: float  # mean training loss since the last report ('batch') or over the epoch ('epoch')
    accuracy: float
    images_per_s: float
    elapsed_s: float
    eta_s: float
    val_loss: float | None = None
    val_accuracy: float | None = None

    @property
    def fraction(self) -> float:
        return ((self.epoch - 1) * self.batches + self.batch) / (self.epochs * self.batches)


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


ProgressCallback = Callable[[Progress], None]


@dataclass
class TrainingState:
    """A run after its last finished epoch: what resuming it needs (saved by the pipeline as the partial file)."""

    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    generator: torch.Tensor  # the batch-order and augmentation generator's state
    rng: torch.Tensor  # torch's global CPU generator's state (dropout)
    history: dict[str, list[float]]
    train_time_s: float
    initialisation: str
    train_checksum: str  # of the training images it was trained on: a resume must use the same ones
    device: str

    @property
    def epochs_completed(self) -> int:
        return len(self.history["epoch"])


EpochCallback = Callable[[TrainingState], None]


@dataclass
class TrainResult:
    """A trained network and how it got there; ``history`` holds one entry per finished epoch."""

    network: nn.Module
    config: TrainConfig
    history: dict[str, list[float]]
    cancelled: bool
    train_time_s: float
    device: str
    initialisation: str
    train_checksum: str

    @property
    def epochs_completed(self) -> int:
        return len(self.history["epoch"])


def build_network(config: TrainConfig, resume: TrainingState | None = None) -> tuple[nn.Module, str]:
    """Build the configured architecture, seeded, and initialise it from pretrained weights where asked, or from the
    state of an earlier run to ``resume`` (which needs no pretrained weights)."""
    spec = get_spec(config.model)
    torch.manual_seed(config.seed)
    network = for_dataset(spec.build(**config.architecture), config.dataset)
    if resume is not None:
        network.load_state_dict(resume.weights)
        return network, resume.initialisation
    if not spec.pretrained_variants or config.weights == FROM_SCRATCH:
        return network, "random (from scratch)"
    assert isinstance(network, MobileNetDigits)  # the registry gives pretrained variants to MobileNet only
    if config.weights is None:
        raise ValueError(f"{config.model} needs weights: 'imagenet', '{FROM_SCRATCH}' or a file path")
    state, provenance = load_pretrained_state(network.variant, config.weights)
    network.load_imagenet_backbone(state)
    return network, provenance


def _make_optimizer(config: TrainConfig, parameters) -> torch.optim.Optimizer:
    if config.optimizer in ADAM_OPTIMIZERS:
        adam = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
        if config.betas is None:
            return adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
        return adam(parameters, lr=config.lr, weight_decay=config.weight_decay, betas=config.betas)
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adadelta(parameters, lr=config.lr, weight_decay=config.weight_decay)


def _make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """The learning-rate scheduler, or None for a constant rate; OneCycle and cosine step per batch, StepLR per
    epoch."""
    total = config.epochs * steps_per_epoch
    if total < ONE_CYCLE_MIN_STEPS and config.schedule != "step":
        return None  # too few steps to warm up and anneal (OneCycleLR divides by zero): keep the rate constant
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=0.25,
                                                   cycle_momentum=config.betas is None)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    return None


@torch.inference_mode()
def evaluate_loss_accuracy(network: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
                           ) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``network`` (left in eval mode) on uint8 images already on its device."""
    network.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        logits = network(normalize(to_unit_float(images[start:start + batch_size]), network))
        target = labels[start:start + batch_size]
        total_loss += F.cross_entropy(logits, target, reduction="sum").item()
        correct += (logits.argmax(1) == target).sum().item()
    return total_loss / len(images), correct / len(images)


def train(
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    data_dir: str | None = None,
    report_every: int = 20,
    on_epoch: EpochCallback | None = None,
    resume: TrainingState | None = None,
) -> TrainResult:
    """Train ``config.model`` on its dataset's training images (or ``data``: uint8 images, int64 labels), from
    scratch or from where ``resume`` left off.

    A fixed validation split is held out for the per-epoch curves; the test set is never seen here. Under torchrun
    each rank trains its share of every global batch (see ``distributed`` for the scaling rule).
    """
    images, labels = data if data is not None else load_dataset(config.dataset, "train", data_dir)
    checksum = tensor_checksum(images, labels)
    if resume is not None and resume.train_checksum != checksum:
        raise ValueError("these are not the training images the run started with, so it cannot be resumed")
    (train_images, train_labels), (val_images, val_labels) = split_train_validation(
        images, labels, min(config.validation_size, len(images) // 5 or 1))
    if config.train_subset is not None:
        train_images, train_labels = train_images[:config.train_subset], train_labels[:config.train_subset]
    device = resolve_device(config.device)
    network, initialisation = build_network(config, resume)
    network = network.to(device)
    if device.type == "cpu":
        # oneDNN's fast convolution layout on CPUs; torch's stubs for Module.to lack the memory_format overload
        network = network.to(memory_format=torch.channels_last)  # pyright: ignore[reportCallIssue]
    train_images, train_labels = train_images.to(device), train_labels.to(device)
    val_images, val_labels = val_images.to(device), val_labels.to(device)
    team = distributed.current()
    trainer = team.wrap(network, device)  # what the steps call: the network, or its DDP wrapper under torchrun

    optimizer = _make_optimizer(config, network.parameters())
    batches = team.batches(len(train_images), config.batch_size)
    scheduler = _make_scheduler(config, optimizer, batches)
    generator = torch.Generator().manual_seed(config.seed)
    history: dict[str, list[float]] = {key: [] for key in (
        "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch_time_s")}
    cancelled = False
    finished_epoch_state: dict[str, torch.Tensor] | None = None
    trained_s = 0.0
    if resume is not None:
        optimizer.load_state_dict(resume.optimizer)
        if scheduler is not None and resume.scheduler is not None:
            scheduler.load_state_dict(resume.scheduler)
        generator.set_state(resume.generator)
        torch.set_rng_state(resume.rng)
        history = copy.deepcopy(resume.history)
        trained_s = resume.train_time_s
        finished_epoch_state = {key: value.detach().clone() for key, value in network.state_dict().items()}
    first_epoch = len(history["epoch"]) + 1
    images_done = (first_epoch - 1) * len(train_images)
    total_images = config.epochs * len(train_images)

    def report(kind, epoch, batch, loss, accuracy, val=(None, None)) -> None:
        if progress is None:
            return
        rate = images_done / max(trained_s + time.perf_counter() - epoch_start, 1e-9)
        elapsed = trained_s + time.perf_counter() - epoch_start
        progress(Progress(kind, epoch, config.epochs, batch, batches, loss, accuracy, rate, elapsed,
                          (total_images - images_done) / max(rate, 1e-9), *val))

    epoch_start = time.perf_counter()  # set again as each epoch starts; here for an interrupt before the first
    try:
        for epoch in range(first_epoch, config.epochs + 1):
            network.train()
            epoch_start = time.perf_counter()
            order = torch.randperm(len(train_images), generator=generator).to(device)
            epoch_loss = torch.zeros((), device=device)
            epoch_correct = torch.zeros((), device=device, dtype=torch.int64)
            window_loss, window_correct, window_count = torch.zeros((), device=device), 0, 0
            for batch in range(1, batches + 1):
                if team.should_stop(cancel, batch):
                    raise KeyboardInterrupt
                index = order[(batch - 1) * config.batch_size: batch * config.batch_size]
                images_done += len(index)
                mine, weight = team.share(len(index))
                inputs, targets = to_unit_float(train_images[index]), train_labels[index]
                if config.augment:
                    inputs = augment_batch(inputs, config.augment_strength, generator)
                if config.room_augment:
                    inputs = room_augment_batch(inputs, generator)
                inputs, targets, index = inputs[mine], targets[mine], index[mine]
                logits = trainer(normalize(inputs, network))
                loss = F.cross_entropy(logits, targets, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                (loss * weight).backward()
                if config.grad_clip:
                    nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
                optimizer.step()
                if scheduler is not None and config.schedule != "step":
                    scheduler.step()
                with torch.no_grad():
                    correct = (logits.argmax(1) == targets).sum()
                    epoch_loss += loss.detach() * len(index)
                    epoch_correct += correct
                    window_loss += loss.detach() * len(index)
                    window_correct = window_correct + correct
                    window_count += len(index)
                if batch % report_every == 0 or batch == batches:
                    report("batch", epoch, batch, window_loss.item() / window_count,
                           int(window_correct) / window_count)
                    window_loss.zero_()
                    window_count, window_correct = 0, 0
            if scheduler is not None and config.schedule == "step":
                scheduler.step()
            team.total(epoch_loss)
            team.total(epoch_correct)
            val_loss, val_accuracy = team.from_main(lambda: evaluate_loss_accuracy(network, val_images, val_labels))
            epoch_time = time.perf_counter() - epoch_start
            seen = min(batches * config.batch_size, len(train_images))
            history["epoch"].append(epoch)
            history["train_loss"].append(epoch_loss.item() / seen)
            history["train_accuracy"].append(epoch_correct.item() / seen)
            history["val_loss"].append(val_loss)
            history["val_accuracy"].append(val_accuracy)
            history["lr"].append(optimizer.param_groups[0]["lr"])
            history["epoch_time_s"].append(epoch_time)
            report("epoch", epoch, batches, history["train_loss"][-1], history["train_accuracy"][-1],
                   (val_loss, val_accuracy))
            trained_s += epoch_time
            finished_epoch_state = {key: value.detach().clone() for key, value in network.state_dict().items()}
            if on_epoch is not None:
                on_epoch(TrainingState(
                    finished_epoch_state, copy.deepcopy(optimizer.state_dict()),
                    scheduler.state_dict() if scheduler is not None else None, generator.get_state(),
                    torch.get_rng_state(), copy.deepcopy(history), trained_s, initialisation, checksum, str(device)))
    except KeyboardInterrupt:
        cancelled = True
        trained_s += time.perf_counter() - epoch_start
        if finished_epoch_state is not None:
            network.load_state_dict(finished_epoch_state)

    network = network.to(memory_format=torch.contiguous_format).eval()  # pyright: ignore[reportCallIssue] (as above)
    return TrainResult(network, config, history, cancelled, trained_s, str(device), initialisation, checksum)
