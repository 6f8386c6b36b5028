"""Choosing where tensors live (CUDA, then Apple's MPS, then the CPU, unless the caller names one) and how many CPU
threads a training takes."""

from __future__ import annotations

import os

import torch

THREADS_ENV = "DIGIT_LAB_TRAINING_THREADS"


def training_threads() -> int:
    """torch's thread count in a training process: $DIGIT_LAB_TRAINING_THREADS, else one per core."""
    return int(os.environ.get(THREADS_ENV) or os.cpu_count() or 1)


def available_devices() -> list[str]:
    """Devices this machine can train on, best first."""
    devices = []
    if torch.cuda.is_available():
        devices.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


def resolve_device(name: str | None = "auto") -> torch.device:
    """'auto' (or None) picks the best available device; a named one must exist here."""
    if name in (None, "auto"):
        return torch.device(available_devices()[0])
    device = torch.device(name)
    if device.type not in available_devices():
        raise ValueError(f"device {name!r} is not available here; available: {', '.join(available_devices())}")
    return device
