"""Why did the model say that? Attribution maps, row-by-row answers, feature maps and first-layer units for one digit.

Each tool answers a different question, and applies to the models whose structure makes the question meaningful:

* Integrated gradients (Captum): how much each pixel contributed to the target's logit, relative to an all-black
  image. Signed (positive = evidence for the target) and complete: the map sums to logit(image) − logit(black), so
  it is an accounting of the score, not just a sensitivity. Works for every model. ``IG_STEPS`` points on the path,
  run as one batched pass.
* Saliency (Captum): |∂ logit / ∂ pixel|, the cheapest map: which pixels the score is most sensitive to right now.
  One backward pass; noisier than integrated gradients and says nothing about direction.
* Grad-CAM (Captum's LayerGradCam on the last convolutional features, i.e. the activation that follows the last
  convolution): where in the image the features that drive the target lie, upsampled to 28×28. Coarse; it needs a
  convolution, so the MLP and the RNN raise ``NoConvolutionError``. MobileNet resizes the digit internally, and its
  last features' small map is stretched back over the 28×28 input. The map is kept signed (Grad-CAM without its
  final ReLU; positive = features that raise the target), because the models here end in dense layers that weigh
  each location separately, and Grad-CAM's averaged gradients then often point against the target: measured on the
  first 50 test digits, the median positive share of the map was 1.00 for MobileNet (which pools globally, as
  Grad-CAM assumes), 0.87 for cnn_basic, 0.71 for cnn, 0.24 for cnn_dropout and 0.08 for speedrun; the rectified
  map would be blank for many of them. (At the convolution's own output, before pooling, batch norm and activation,
  the shares were 0.04-0.38 for the small CNNs.)
* ``step_probabilities``: a recurrent model's answer after each step it has read: the RNN's rows, the CNN + GRU's
  feature columns (the model's ``READING`` and ``logits_after_each_step``).
* ``feature_maps``: every convolution's output for the digit.
* ``strongest_first_units``: for models reading the 784 pixels through a dense layer, the most active first-layer
  units and their weights drawn as 28×28 templates.

Private copies. The dashboard shares one model object between concurrent sessions (threads). Captum registers hooks
on modules and needs gradients, and several models use in-place activations (``nn.ReLU(inplace=True)``, MobileNet's
Hardswish), which break backward hooks and gradient capture at a layer's output. So nothing here touches the caller's
model: each model gets one private copy (deep copy, eval mode, every ``inplace`` flag off, parameters without
gradients), cached per model object in a ``WeakKeyDictionary`` and used under its own lock, so two threads never mix
their hooks. A copy is made once and does not follow later changes to the original's weights: these tools are for
shipped or saved models that do not change after loading, not for a model in the middle of training.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np
import torch
from torch import nn

from .data import normalize, to_unit_float
from .errors import DigitLabError
from .extras import needs_extra
from .inference import as_image_batch
from .models.architectures import Reading

ATTRIBUTION_METHODS = ("integrated_gradients", "saliency", "gradcam")
IG_STEPS = 32
"""Points on integrated gradients' path from black to the image; evaluated as one batch of this size."""

T = TypeVar("T")


class NoConvolutionError(DigitLabError, ValueError):
    """Grad-CAM was asked of a model that has no convolution layer."""


@dataclass(frozen=True)
class Unit:
    """One first-layer unit of a flat-pixel model: its index, post-ReLU activation for the image, and its weights."""

    index: int
    activation: float
    weights: np.ndarray  # (28, 28) float32: the template the unit matches the normalised image against


class _PrivateCopy:
    """A model's explanation copy and the lock that serialises its use."""

    def __init__(self, model: nn.Module) -> None:
        network = copy.deepcopy(model).eval()
        for module in network.modules():
            if hasattr(module, "inplace"):
                module.inplace = False  # pyright: ignore[reportArgumentType] (torch types Module.__setattr__ narrowly)
        for parameter in network.parameters():
            parameter.requires_grad_(False)
        self.network = network
        self.lock = threading.Lock()


_copies: weakref.WeakKeyDictionary[nn.Module, _PrivateCopy] = weakref.WeakKeyDictionary()
_copies_lock = threading.Lock()


def _private(model: nn.Module) -> _PrivateCopy:
    with _copies_lock:
        private = _copies.get(model)
        if private is None:
            private = _copies[model] = _PrivateCopy(model)
        return private


def _with_copy(model: nn.Module, work: Callable[[nn.Module], T]) -> T:
    """Run ``work`` on the model's private copy, holding its lock."""
    private = _private(model)
    with private.lock:
        return work(private.network)


def _model_input(image, model: nn.Module) -> torch.Tensor:
    """A single (28, 28) image (uint8 0–255, or float 0–1) → normalised for ``model``'s dataset (1, 1, 28, 28), a
    fresh tensor."""
    batch = as_image_batch(image)
    if batch.shape[0] != 1:
        raise ValueError(f"expected one image of shape (28, 28), got {batch.shape[0]}")
    return normalize(to_unit_float(batch), model).contiguous()


def _last_convolution(model: nn.Module) -> nn.Conv2d | None:
    convolutions = [module for module in model.modules() if isinstance(module, nn.Conv2d)]
    return convolutions[-1] if convolutions else None


ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.LeakyReLU, nn.ELU, nn.Tanh)


def _last_features(model: nn.Module) -> nn.Module:
    """Grad-CAM's layer: the first activation after the last convolution (its rectified feature maps), or the
    convolution itself when no activation follows it."""
    modules = list(model.modules())
    last = max(index for index, module in enumerate(modules) if isinstance(module, nn.Conv2d))
    return next((module for module in modules[last + 1:] if isinstance(module, ACTIVATIONS)), modules[last])


def _first_flat_layer(model: nn.Module) -> nn.Linear | None:
    return next((module for module in model.modules()
                 if isinstance(module, nn.Linear) and module.in_features == 28 * 28), None)


def has_convolution(model: nn.Module) -> bool:
    """True when the model has an nn.Conv2d, so Grad-CAM and feature maps apply."""
    return _last_convolution(model) is not None


def reading(model: nn.Module) -> Reading | None:
    """How the model walks over a digit step by step (``step_probabilities`` applies), None when it reads it whole."""
    return getattr(model, "READING", None)


def reads_flat_pixels(model: nn.Module) -> bool:
    """True when a dense layer reads the 784 pixels (``strongest_first_units`` applies)."""
    return _first_flat_layer(model) is not None


def attribute(model: nn.Module, image, method: str, target: int | None = None) -> np.ndarray:
    """A (28, 28) float32 map of how each pixel bears on ``target`` (default: the model's predicted digit).

    ``method`` is one of ATTRIBUTION_METHODS: integrated gradients and Grad-CAM are signed (positive = evidence for
    the target), saliency is ≥ 0. Grad-CAM on a model without convolutions raises NoConvolutionError.
    """
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"method must be one of {', '.join(ATTRIBUTION_METHODS)}, not {method!r}")
    if method == "gradcam" and not has_convolution(model):
        raise NoConvolutionError("this model has no convolution layer, so Grad-CAM (which maps the last "
                                 "convolution's features back onto the image) does not apply to it")
    inputs = _model_input(image, model)

    def work(network: nn.Module) -> np.ndarray:
        with needs_extra("explain", "Attribution maps"):
            from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency

        chosen = target
        if chosen is None:
            with torch.inference_mode():
                chosen = int(network(inputs).argmax(dim=1).item())
        if not 0 <= chosen < 10:
            raise ValueError(f"target must be a digit 0-9, not {chosen}")
        if method == "integrated_gradients":
            baseline = normalize(torch.zeros_like(inputs), network)
            result = IntegratedGradients(network).attribute(
                inputs, baselines=baseline, target=chosen, n_steps=IG_STEPS, internal_batch_size=IG_STEPS)
        elif method == "saliency":
            inputs.requires_grad_()  # what Captum would do, minus its warning that it had to
            result = Saliency(network).attribute(inputs, target=chosen, abs=True)
        else:
            # one input tensor gets one attribution tensor (Captum's type also allows a tuple for several)
            cam = cast(torch.Tensor, LayerGradCam(network, _last_features(network)).attribute(
                inputs, target=chosen, relu_attributions=False))
            result = LayerAttribution.interpolate(cam, (28, 28), interpolate_mode="bilinear")
        return result.detach()[0, 0].float().numpy().astype(np.float32, copy=True)

    return _with_copy(model, work)


def step_probabilities(model: nn.Module, image) -> np.ndarray:
    """(steps, 10) float32: line k holds the class probabilities after the model has read steps 0..k (rows or
    feature columns, see ``reading``) of the image."""
    if reading(model) is None:
        raise ValueError("this model reads the image whole, not step by step, so it has no answer after each step")
    inputs = _model_input(image, model)

    def work(network: nn.Module) -> np.ndarray:
        # the models with a READING (checked above) define it; nn.Module does not declare it
        steps = cast(Callable[[torch.Tensor], torch.Tensor], network.logits_after_each_step)
        with torch.inference_mode():
            logits = steps(inputs)[0]
            return torch.softmax(logits.float(), dim=-1).numpy().astype(np.float32, copy=True)

    return _with_copy(model, work)


def feature_maps(model: nn.Module, image) -> dict[str, np.ndarray]:
    """Each nn.Conv2d's output for the image, by qualified layer name, as float32 (channels, H, W), in module order.
    Empty for a model without convolutions."""
    inputs = _model_input(image, model)

    def work(network: nn.Module) -> dict[str, np.ndarray]:
        outputs: dict[str, np.ndarray] = {}
        handles = []

        def recorder(name: str):
            def hook(_module, _inputs, output):
                outputs[name] = output.detach()[0].float().contiguous().numpy().astype(np.float32, copy=True)
            return hook

        try:
            for name, module in network.named_modules():
                if isinstance(module, nn.Conv2d):
                    handles.append(module.register_forward_hook(recorder(name)))
            if handles:
                with torch.inference_mode():
                    network(inputs)
        finally:
            for handle in handles:
                handle.remove()
        return outputs

    return _with_copy(model, work)


def strongest_first_units(model: nn.Module, image, count: int = 8) -> list[Unit]:
    """The ``count`` first-layer units with the largest post-ReLU activation for the image, strongest first, for a
    model whose first dense layer reads the 784 pixels; ValueError for any other model."""
    if not reads_flat_pixels(model):
        raise ValueError("this model has no dense layer reading the 784 pixels directly, so it has no first-layer "
                         "units to show")
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    inputs = _model_input(image, model)

    def work(network: nn.Module) -> list[Unit]:
        layer = _first_flat_layer(network)
        assert layer is not None  # the copy has the layer reads_flat_pixels found in the model above
        captured: list[torch.Tensor] = []
        handle = layer.register_forward_hook(lambda _module, _inputs, output: captured.append(output.detach()))
        try:
            with torch.inference_mode():
                network(inputs)
        finally:
            handle.remove()
        activations = torch.relu(captured[0].reshape(-1).float())
        values, indices = torch.topk(activations, min(count, activations.numel()))
        weights = layer.weight.detach().float()
        return [Unit(index=int(index), activation=float(value),
                     weights=weights[int(index)].reshape(28, 28).numpy().astype(np.float32, copy=True))
                for value, index in zip(values, indices, strict=True)]

    return _with_copy(model, work)
