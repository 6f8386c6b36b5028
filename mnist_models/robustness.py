"""How far a digit can be pushed before a model changes its mind: what-if transformations and adversarial attacks.

``perturb`` applies the transformations a viewer asks for with sliders (rotate, shift, zoom, thicker or thinner
strokes, occlusion, noise); ``adversarial`` computes the smallest-looking change that fools a model, with Captum's
maintained FGSM and PGD. Both take one image (28, 28) or a batch (N, 28, 28) in MNIST's convention (white digit on
black, uint8 0–255, or float 0–1) and return uint8 of the same shape, so the dashboard shows the result as any other
digit and a robustness curve over the test set runs the same functions on the whole batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import normalize, to_unit_float
from .extras import needs_extra
from .inference import BATCH_SIZE, as_image_batch, eval_mode, predict_proba

EPSILON_METHODS = ("fgsm", "pgd")
"""The attacks ``adversarial`` offers: one signed-gradient step (FGSM) or ``steps`` projected ones (PGD)."""

PGD_STEP_FACTOR = 2.5
"""PGD's step is 2.5·ε/steps (Madry et al.): large enough to reach the edge of the ε-box and move along it."""

SIZE = 28

FLIP_SEARCH_LIMIT = 0.5
"""The largest ε ``smallest_flipping_epsilon`` tries: half the intensity range, far past MNIST's usual 0.3 budget."""

FLIP_SEARCH_STEP = 0.01
"""The precision of the ε it reports."""

COARSE_STRIDE = 5
"""It first tries every 5th ε of the grid, then the steps below the first that flips: about 15 attacks, not 50."""


def _as_batch(image) -> tuple[torch.Tensor, bool]:
    """(uint8 or float (N, 28, 28) tensor, whether the caller passed a single image), with a clear error otherwise."""
    shape = tuple(np.shape(image))
    if len(shape) not in (2, 3) or shape[-2:] != (SIZE, SIZE):
        raise ValueError(f"expected an image of shape (28, 28) or a batch (N, 28, 28), got {shape}")
    return as_image_batch(image), len(shape) == 2


def _to_uint8(unit: torch.Tensor, single: bool) -> np.ndarray:
    """Unit-float (N, 1, 28, 28) or (N, 28, 28) → rounded, clipped uint8 in the caller's shape."""
    pixels = unit.detach().reshape(-1, SIZE, SIZE).mul(255.0).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
    return pixels[0] if single else pixels


def _unchanged(batch: torch.Tensor, single: bool) -> np.ndarray:
    """The input as uint8, bit for bit when it was uint8: what a neutral setting must return."""
    if batch.dtype == torch.uint8:
        pixels = batch.cpu().numpy().copy()
        return pixels[0] if single else pixels
    return _to_uint8(batch.float(), single)


def perturb(image, *, rotate: float = 0.0, shift: tuple[float, float] = (0, 0), scale: float = 1.0,
            thickness: int = 0, noise: float = 0.0, occlude: tuple[int, int, int] | None = None,
            seed: int = 0) -> np.ndarray:
    """The image transformed as a viewer asks, to see what the model makes of it; uint8, same shape as ``image``.

    rotate: degrees counter-clockwise as seen; shift: (dx, dy) pixels right and down; scale: zoom about the centre
    (below 1 shrinks); thickness: strokes grown (positive) or thinned (negative) by that many 3×3 max/min filters;
    occlude: (row, col, size), a black square of side ``size`` centred there, clipped at the borders; noise: Gaussian
    σ in 0–1 intensity, from a numpy generator seeded with ``seed`` so a slider redraw shows the same noise.

    The steps run in the order a real distortion would: geometry (one bilinear affine warp, so rotating and zooming
    blur only once), then stroke width, occlusion and noise, then rounding. Each neutral step is skipped, so the
    defaults return the image exactly.
    """
    batch, single = _as_batch(image)
    dx, dy = _validate_perturbation(rotate, shift, scale, thickness, noise, occlude)
    if len(batch) == 0 or not (rotate or dx or dy or scale != 1.0 or thickness or noise or occlude is not None):
        return _unchanged(batch, single)

    unit = to_unit_float(batch).clone()  # (N, 1, 28, 28); a copy, as occlusion writes in place
    if rotate or dx or dy or scale != 1.0:
        unit = _affine(unit, float(rotate), float(dx), float(dy), float(scale))
    for _ in range(abs(int(thickness))):
        # Dilation is a 3×3 max; erosion the same on the negative (a 3×3 min); max_pool2d pads with -inf, so the
        # border never counts as ink or as background.
        unit = F.max_pool2d(unit, 3, stride=1, padding=1) if thickness > 0 else -F.max_pool2d(-unit, 3, 1, 1)
    if occlude is not None:
        row, col, size = (int(value) for value in occlude)
        top, left = row - size // 2, col - size // 2
        unit[..., max(top, 0):max(top + size, 0), max(left, 0):max(left + size, 0)] = 0.0
    if noise:
        rng = np.random.default_rng(seed)
        unit = unit + torch.from_numpy(rng.normal(0.0, float(noise), size=tuple(unit.shape)).astype(np.float32))
    return _to_uint8(unit, single)


def _validate_perturbation(rotate, shift, scale, thickness, noise, occlude) -> tuple[float, float]:
    """Reject settings that have no meaning, naming the argument; return the shift as (dx, dy)."""
    for name, value in (("rotate", rotate), ("scale", scale), ("noise", noise)):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    try:
        dx, dy = (float(value) for value in shift)
    except (TypeError, ValueError):
        raise ValueError(f"shift must be a pair (dx, dy) of numbers, got {shift!r}") from None
    if not (np.isfinite(dx) and np.isfinite(dy)):
        raise ValueError(f"shift must be finite, got {shift!r}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    if int(thickness) != thickness:
        raise ValueError(f"thickness must be a whole number of pixels, got {thickness!r}")
    if noise < 0:
        raise ValueError(f"noise must be ≥ 0 (a standard deviation in 0–1 intensity), got {noise!r}")
    if occlude is not None:
        if len(occlude) != 3 or any(int(value) != value for value in occlude):
            raise ValueError(f"occlude must be None or (row, col, size) in whole pixels, got {occlude!r}")
        if occlude[2] < 1:
            raise ValueError(f"occlude size must be ≥ 1, got {occlude[2]!r}")
    return dx, dy


def _affine(unit: torch.Tensor, degrees: float, dx: float, dy: float, scale: float) -> torch.Tensor:
    """Zoom by ``scale`` and rotate ``degrees`` counter-clockwise about the centre, then shift (dx, dy) pixels.

    affine_grid maps each output position to where it samples the input, so theta is the inverse of the forward
    map p → scale·R·p + t. Its coordinates span 2 units per 28 pixels, as in ``data.augment_batch``; with y pointing
    down, counter-clockwise as seen is R = [[cos, sin], [-sin, cos]], whose inverse is its transpose.
    """
    angle = torch.tensor(np.radians(degrees), dtype=torch.float64)
    cos, sin = float(torch.cos(angle)) / scale, float(torch.sin(angle)) / scale
    tx, ty = dx * 2.0 / SIZE, dy * 2.0 / SIZE
    inverse = [[cos, -sin], [sin, cos]]
    theta = torch.tensor([[inverse[0][0], inverse[0][1], -(inverse[0][0] * tx + inverse[0][1] * ty)],
                          [inverse[1][0], inverse[1][1], -(inverse[1][0] * tx + inverse[1][1] * ty)]],
                         dtype=unit.dtype).expand(unit.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(unit.shape), align_corners=False)
    return F.grid_sample(unit, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _per_example_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The attack's loss, one value per image: the models return logits, and Captum's default (-log of the output)
    would assume probabilities.

    Only the gradient's sign counts, so the attacks set Captum's ``zero_thresh`` (gradients below it are treated as
    zero, 1e-6 by default) to 0: on a digit a model is sure of, the cross-entropy's gradient is far smaller than that
    everywhere, and the default left such images untouched (the shipped basic CNN's first test digits)."""
    return F.cross_entropy(logits.float(), target, reduction="none")


def adversarial(model: nn.Module, image, epsilon: float, method: str = "fgsm", target=None, *,
                steps: int = 10) -> np.ndarray:
    """The image changed by at most ``epsilon`` (0–1 intensity) per pixel so as to fool ``model``; uint8, same shape.

    Untargeted (``target`` None) it pushes each image away from the model's own current prediction, not from a label:
    the question is what it takes to change this model's mind. With ``target`` (a digit, or one per image) it pulls
    towards that digit. The attack works on the 0–1 image, before the model's normalisation, and is bounded to 0–1,
    so the result is a valid picture. ``method`` is "fgsm" (one step) or "pgd" (``steps`` projected steps, stronger).

    The model runs in eval mode (dropout off, batch norm's running statistics, as it predicts) and each submodule is
    handed back in the mode it had; only gradients with respect to the input are computed, so its parameters, and
    their ``.grad`` and ``requires_grad``, are left alone.
    """
    if method not in EPSILON_METHODS:
        raise ValueError(f"unknown attack method {method!r}; choose one of {', '.join(EPSILON_METHODS)}")
    if not np.isfinite(epsilon) or not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must be between 0 and 1 (intensity), got {epsilon!r}")
    if method == "pgd" and (int(steps) != steps or steps < 1):
        raise ValueError(f"steps must be a whole number ≥ 1, got {steps!r}")
    batch, single = _as_batch(image)
    targets = _targets(target, len(batch))
    if epsilon == 0 or len(batch) == 0:
        return _unchanged(batch, single)

    device = next(model.parameters()).device
    # Gradients even when a caller holds inference or no-grad mode; cuDNN's recurrent layers refuse backward in eval
    # mode on a GPU, so cuDNN is off for the attack (no effect on the CPU).
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        chunks = [_attack(model, to_unit_float(batch[start:start + BATCH_SIZE].to(device)),
                          None if targets is None else targets[start:start + BATCH_SIZE].to(device),
                          float(epsilon), method, int(steps))
                  for start in range(0, len(batch), BATCH_SIZE)]
    return _to_uint8(torch.cat(chunks), single)


def _targets(target, count: int) -> torch.Tensor | None:
    """None, or one digit per image as a long tensor, from a digit or a sequence of ``count`` digits."""
    if target is None:
        return None
    digits = np.asarray(target)
    if digits.ndim == 0:
        digits = np.full(count, digits)
    if digits.shape != (count,) or not np.issubdtype(digits.dtype, np.integer) or digits.min() < 0 or digits.max() > 9:
        raise ValueError(f"target must be None, a digit 0-9 or one digit per image ({count}), got {target!r}")
    return torch.as_tensor(digits, dtype=torch.long)


def _attack(model: nn.Module, unit: torch.Tensor, target: torch.Tensor | None, epsilon: float, method: str,
            steps: int) -> torch.Tensor:
    """One chunk of (n, 1, 28, 28) unit-float images attacked; the model is already in eval mode."""
    with needs_extra("explain", "Adversarial attacks"):
        from captum.robust import FGSM, PGD  # here: Captum loads matplotlib (a second), which only attacks need

    def forward(unit_images: torch.Tensor) -> torch.Tensor:
        return model(normalize(unit_images, model))

    # Captum would set requires_grad itself, with a warning; PGD's later steps still warn (it detaches between
    # steps), once per process under Python's default filter, so it is left at that rather than filtered globally.
    unit = unit.detach().requires_grad_()
    targeted = target is not None
    if target is None:
        with torch.no_grad():
            target = forward(unit).argmax(dim=1)
    bounds = {"loss_func": _per_example_cross_entropy, "lower_bound": 0.0, "upper_bound": 1.0}
    if method == "fgsm":
        fgsm = FGSM(forward, **bounds)
        fgsm.zero_thresh = 0.0
        return fgsm.perturb(unit, epsilon=epsilon, target=target, targeted=targeted)
    pgd = PGD(forward, **bounds)
    pgd.fgsm.zero_thresh = 0.0
    return pgd.perturb(unit, radius=epsilon, step_size=PGD_STEP_FACTOR * epsilon / steps, step_num=steps,
                       target=target, targeted=targeted, norm="Linf")


def smallest_flipping_epsilon(model: nn.Module, image, method: str = "fgsm", target: int | None = None, *,
                              limit: float = FLIP_SEARCH_LIMIT, step: float = FLIP_SEARCH_STEP) -> float | None:
    """The smallest ε, on a grid of ``step`` up to ``limit``, at which ``adversarial`` changes the model's answer for
    one (28, 28) image (with ``target``: makes it answer that digit); None when none does.

    Which model flips first is the page's question. A stronger attack does not always flip more (the loss is not
    monotonic in ε), so the search tries a coarse grid, then every step below the first coarse ε that flips."""
    grid = np.round(np.arange(1, int(round(limit / step)) + 1) * step, 6)
    original = int(predict_proba(model, image)[0].argmax())

    def flips(epsilon: float) -> bool:
        answer = int(predict_proba(model, adversarial(model, image, float(epsilon), method, target))[0].argmax())
        return answer == target if target is not None else answer != original

    coarse = next((index for index in range(COARSE_STRIDE - 1, len(grid), COARSE_STRIDE) if flips(grid[index])), None)
    if coarse is None:
        return float(grid[-1]) if len(grid) % COARSE_STRIDE and flips(grid[-1]) else None
    start = max(0, coarse - COARSE_STRIDE + 1)
    return float(next(grid[index] for index in range(start, coarse + 1) if index == coarse or flips(grid[index])))
