"""ImageNet initialisation for MobileNet: torchvision's weights API when the file can be had, else a clear refusal.

The weights come from the torch hub cache (``$TORCH_HOME/hub/checkpoints``) or a download; offline machines can drop
the file there or pass an explicit file. Training from scratch is an explicit choice ("none"), never a silent fallback.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..errors import DigitLabError
from .architectures import mobilenet_variant

FROM_SCRATCH = "none"
IMAGENET = "imagenet"


class PretrainedWeightsUnavailable(DigitLabError, RuntimeError):
    """The requested ImageNet weights cannot be loaded; the message lists the ways out."""


def _hub_cache_file(variant: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(mobilenet_variant(variant)[1].url).name


def imagenet_weights_cached(variant: str) -> bool:
    """Whether the ImageNet file for ``variant`` is already in the torch hub cache (usable without a download)."""
    return _hub_cache_file(variant).is_file()


def load_pretrained_state(variant: str, weights: str) -> tuple[dict[str, torch.Tensor], str]:
    """Return (state_dict, provenance) for ``weights`` = 'imagenet' or a file path."""
    if weights == IMAGENET:
        enum = mobilenet_variant(variant)[1]
        try:
            state = enum.get_state_dict(progress=True, check_hash=True)
        except Exception as error:  # URLError, HTTPError, hash mismatch, corrupt cache: all mean "not available"
            cache = _hub_cache_file(variant)
            raise PretrainedWeightsUnavailable(
                f"ImageNet weights for MobileNet {variant} are not available ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else 'no detail'}). They download from {enum.url} into "
                f"{cache}. Offline, copy that file there or pass --weights FILE; or train from scratch with "
                f"--weights {FROM_SCRATCH} (initial weights 'random' on the Train page)."
            ) from None
        return state, f"ImageNet ({enum.__class__.__name__}.{enum.name})"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise PretrainedWeightsUnavailable(
            f"weights file {path} does not exist; use --weights {IMAGENET}, a file, or {FROM_SCRATCH}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise PretrainedWeightsUnavailable(f"weights file {path} could not be read safely: {error}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise PretrainedWeightsUnavailable(f"weights file {path} does not hold a state dict of tensors")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return state, f"file {path.name} (sha256 {digest}…)"
