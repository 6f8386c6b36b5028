"""Turning digits into probabilities, for any registered model, from numpy or torch input."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from .data import dataset_of, for_dataset, normalize, to_unit_float

BATCH_SIZE = 128
"""Images per forward pass. On the CPU, chunks this small keep a convolutional model's activations in cache: 1,000
images in one pass took 1.7-2.4x longer through the CNNs and MobileNet, and 256 MobileNet 1.5x longer; the flat and
recurrent models barely notice (benchmarks/bench_inference.py)."""


def as_image_batch(images) -> torch.Tensor:
    """Accept (28, 28) or (N, 28, 28) uint8 (0–255) or float (0–1) arrays/tensors; return a uint8/float tensor."""
    tensor = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 3 or tuple(tensor.shape[1:]) != (28, 28):
        raise ValueError(f"expected images of shape (N, 28, 28) or (28, 28), got {tuple(tensor.shape)}")
    if tensor.dtype != torch.uint8 and not tensor.is_floating_point():
        tensor = tensor.to(torch.uint8)
    return tensor


def folded_for_inference(network: nn.Module) -> nn.Module:
    """An eval-mode copy of ``network`` with every batch norm that directly follows a convolution folded into it
    (torch.fx), channels-last: the same function with one pass less over the activations, which makes MobileNet's
    bulk predictions 1.6x faster. The copy does not follow later changes to ``network``'s weights, so it is for a
    bulk pass that makes it and drops it (``evaluate``), never for a network kept to serve predictions."""
    from torch.fx.experimental.optimization import fuse  # here: the dashboard, which never folds, skips the import

    # torch's stubs for Module.to lack the memory_format overload
    folded = fuse(copy.deepcopy(network).eval(), inplace=True).to(
        memory_format=torch.channels_last)  # pyright: ignore[reportCallIssue]
    return for_dataset(folded, dataset_of(network).name)  # tracing keeps only what forward uses


@contextmanager
def eval_mode(network: nn.Module) -> Iterator[nn.Module]:
    """``network`` in eval mode (no dropout, batch norm's running statistics) for the block, then every submodule
    handed back in the mode the caller had it in: predicting in the middle of a training, or of a fine-tuning with
    some layers frozen in eval mode, changes nothing."""
    modes = [(module, module.training) for module in network.modules()]
    network.eval()
    try:
        yield network
    finally:
        for module, training in modes:
            module.training = training


@torch.inference_mode()
def _forward(network: nn.Module, images, batch_size: int) -> torch.Tensor:
    """The network's raw outputs (N, 10) on the CPU, in batches, in eval mode (see predict_proba).

    Each batch goes in channels-last, the layout oneDNN's convolutions are fastest in when the weights are in it too
    (``load_checkpoint`` converts them); for one channel it costs nothing, and flat models read it unchanged."""
    batch = as_image_batch(images)
    device = next(network.parameters()).device
    with eval_mode(network):
        chunks = [network(normalize(to_unit_float(batch[start:start + batch_size].to(device)), network).contiguous(
                      memory_format=torch.channels_last)).float().cpu()
                  for start in range(0, len(batch), batch_size)]
    return torch.cat(chunks)


def predict_logits(network: nn.Module, images, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Logits (N, 10), float32, for images in MNIST's convention (white digit on black); see predict_proba.

    What an out-of-distribution score (``mnist_models.novelty``) is computed from; ``probabilities_from_logits``
    turns them into exactly what predict_proba returns, so one forward pass serves both.
    """
    return _forward(network, images, batch_size).numpy()


def probabilities_from_logits(logits) -> np.ndarray:
    """Softmax over the last axis of (N, 10) or (10,) logits: the class probabilities predict_proba returns."""
    return torch.softmax(torch.as_tensor(logits), dim=-1).numpy()


def predict_proba(network: nn.Module, images, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Class probabilities (N, 10) for images in MNIST's convention (white digit on black).

    The network runs in eval mode (no dropout, batch norm's running statistics) and every submodule is handed back in
    the mode the caller had it in, so predicting in the middle of training (or of a fine-tuning with some layers
    frozen in eval mode) changes nothing.
    """
    return probabilities_from_logits(_forward(network, images, batch_size))
