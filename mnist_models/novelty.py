"""Is this a digit at all? An out-of-distribution score from a model's own logits, calibrated on validation digits.

A classifier trained on MNIST names one of ten digits for any input, often with high confidence. Its logits still
carry evidence of how familiar the input is: the energy score ``-T·logsumexp(logits / T)`` (Liu et al., 2020) is low
for the digits the model was trained on and higher for inputs unlike them. ``calibrate`` scores the validation digits
the weights never trained on and keeps the threshold above which only ``false_rejection_rate`` of them fall (1% by
default); ``is_novel`` compares new inputs with it, and ``refuse`` combines several models' verdicts.

What the models' evidence can and cannot tell (``python -m benchmarks.bench_novelty``, results in
``benchmarks/results/novelty.json``): with ``refuse`` over all six models at 1%, 0.9% of MNIST's test digits are
refused, 2.1% of digits drawn small, 4.0% of digits drawn with a thin pen and 16.5% with a hairline (strokes well under
MNIST's width score as unfamiliar); flat grey squares (uniform noise after preprocessing) 100%, filled rectangles 75%,
Fashion-MNIST pictures 83–88%, random scribbles 52%, letters 15%. A filled disc (one tap on the canvas, after
preprocessing) is flagged by the MLP alone: the CNNs read it as a confident 0 (a Mahalanobis distance on the
penultimate features, tried while choosing the score, missed it too), so the ink analysis in ``preprocess.py`` has to
catch dots.

Scores, higher meaning less like a digit: ``energy`` (the default), ``max_logit`` (as good: mean ROC AUC within
0.001 of energy for every model) and ``msp``, one minus the top probability (worse for five of the six models, as
confident models' probabilities crowd against 1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from .inference import as_image_batch, predict_logits
from .store.records import NOVELTY_SCORES, NoveltyThreshold, utc_now

DEFAULT_SCORE = "energy"
DEFAULT_FALSE_REJECTION_RATE = 0.01
"""The share of real validation digits a model's threshold rejects; see the benchmark for the rates compared."""
ENERGY_TEMPERATURE = 1.0
QUANTILE_LEVELS = (0.0, 0.01, 0.05, 0.5, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 1.0)
"""The validation scores' quantiles kept in the record, dense in the upper tail where thresholds are chosen."""
REFUSE_SHARE = 0.5
"""``refuse``: the share of calibrated models that must flag an input (at least half of them)."""

__all__ = ["DEFAULT_FALSE_REJECTION_RATE", "DEFAULT_SCORE", "NOVELTY_SCORES", "NoveltyThreshold", "calibrate",
           "energy", "is_novel", "max_logit", "max_softmax", "novelty_scores", "refuse", "scores_for",
           "threshold_from_scores"]


def _logits(logits) -> torch.Tensor:
    """(N, 10) float64: scores are computed in double precision, so confident models' values do not saturate."""
    tensor = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    if tensor.dim() == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 2:
        raise ValueError(f"expected logits of shape (N, classes) or (classes,), got {tuple(tensor.shape)}")
    return tensor


def energy(logits, temperature: float = ENERGY_TEMPERATURE) -> np.ndarray:
    """``-T·logsumexp(logits / T)`` per row: the free energy, low for familiar inputs."""
    return (-temperature * torch.logsumexp(_logits(logits) / temperature, dim=1)).numpy()


def max_logit(logits) -> np.ndarray:
    """Minus the largest logit per row."""
    return (-_logits(logits).max(dim=1).values).numpy()


def max_softmax(logits) -> np.ndarray:
    """One minus the top class probability per row (the maximum softmax probability baseline), computed as the
    other classes' share so that it stays above 0 however confident the model is."""
    values = _logits(logits)
    others = values.scatter(1, values.argmax(dim=1, keepdim=True), float("-inf"))
    return torch.exp(torch.logsumexp(others, dim=1) - torch.logsumexp(values, dim=1)).numpy()


def novelty_scores(logits, score: str = DEFAULT_SCORE, temperature: float = ENERGY_TEMPERATURE) -> np.ndarray:
    """Per row of (N, 10) or (10,) logits, the named score (float64, (N,)); higher is less like a digit."""
    if score == "energy":
        return energy(logits, temperature)
    if score == "max_logit":
        return max_logit(logits)
    if score == "msp":
        return max_softmax(logits)
    raise ValueError(f"score must be one of {NOVELTY_SCORES}, not {score!r}")


def threshold_from_scores(scores, score: str = DEFAULT_SCORE,
                          false_rejection_rate: float = DEFAULT_FALSE_REJECTION_RATE,
                          temperature: float | None = ENERGY_TEMPERATURE,
                          validation_sha256: str | None = None) -> NoveltyThreshold:
    """The threshold for validation ``scores``: one of them, chosen so that at most ``false_rejection_rate`` of them
    lie strictly above it (the empirical ``1 - rate`` quantile, rounded up to a sample)."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    if len(values) == 0:
        raise ValueError("calibration needs at least one validation image")
    if not 0.0 <= false_rejection_rate < 1.0:
        raise ValueError(f"false_rejection_rate must be in [0, 1), not {false_rejection_rate}")
    if score not in NOVELTY_SCORES:
        raise ValueError(f"score must be one of {NOVELTY_SCORES}, not {score!r}")
    return NoveltyThreshold(
        score=score,
        threshold=float(np.quantile(values, 1.0 - false_rejection_rate, method="higher")),
        false_rejection_rate=float(false_rejection_rate),
        count=len(values),
        quantiles={str(level): float(np.quantile(values, level)) for level in QUANTILE_LEVELS},
        temperature=float(temperature) if score == "energy" and temperature is not None else None,
        validation_sha256=validation_sha256,
        calibrated=utc_now(),
    )


def calibrate(network: nn.Module, validation_images, score: str = DEFAULT_SCORE,
              false_rejection_rate: float = DEFAULT_FALSE_REJECTION_RATE,
              temperature: float = ENERGY_TEMPERATURE) -> NoveltyThreshold:
    """Score ``validation_images`` (digits the weights never trained on, any form ``predict_proba`` accepts) and
    keep the threshold that rejects ``false_rejection_rate`` of them."""
    images = as_image_batch(validation_images)
    digest = hashlib.sha256(images.contiguous().cpu().numpy().tobytes()).hexdigest()
    scores = novelty_scores(predict_logits(network, images), score, temperature)
    return threshold_from_scores(scores, score, false_rejection_rate, temperature, digest)


def scores_for(logits, threshold: NoveltyThreshold) -> np.ndarray:
    """The scores of ``logits`` computed as ``threshold`` was (its score, its temperature)."""
    return novelty_scores(logits, threshold.score, threshold.temperature or ENERGY_TEMPERATURE)


def is_novel(logits, threshold: NoveltyThreshold) -> np.ndarray:
    """Per row of (N, 10) or (10,) logits, whether the input scores above the model's calibrated threshold."""
    return scores_for(logits, threshold) > threshold.threshold


def refuse(flags: Iterable[bool | None], share: float = REFUSE_SHARE) -> bool | None:
    """The combined verdict over the selected models' ``is_novel`` flags (None for a model without calibration,
    which has no say): True when at least ``share`` of the calibrated models flag the input, None when none is
    calibrated. With one model it decides alone; with six, three must agree."""
    votes = [bool(flag) for flag in flags if flag is not None]
    if not votes:
        return None
    return sum(votes) >= share * len(votes)
