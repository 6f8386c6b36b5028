"""Per-model evidence beyond test accuracy, computed once on the 10,000 test digits and saved beside the checkpoint.

Each part answers a question a stakeholder asks before trusting a model:

- **Robustness curves** — "what if the digits we get are not as tidy as MNIST's?" Accuracy as each corruption
  (rotation, shift, zoom, stroke width, noise, a blot over the centre, an FGSM attack) grows, with one score per
  corruption: the area under the curve relative to the clean accuracy (1.0 = nothing lost at any level).
- **Calibration** — "when the model says 99 %, is it right 99 % of the time?" Reliability diagrams, expected
  calibration error and log loss before and after temperature scaling (fitted on the validation digits, judged on
  the test digits), so a confidence can be read as a probability.
- **Selective prediction** — "how many digits can we automate at 99.9 % accuracy and send the rest to a person?"
  The risk–coverage curve and the lowest confidence threshold that keeps the accepted digits at the target accuracy.
- **Disagreements** — "do two models fail on the same digits?" Pairwise disagreement counts and, for a pair, which
  of them is right where they differ (computed on the fly from the saved predictions; not stored here).

``compute_evidence`` runs the parts; the record it returns, and its saving and reading, live with the other records
in ``store.evidence_records``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.calibration import calibration_curve
from torch import nn

from .inference import folded_for_inference, predict_logits, predict_proba, probabilities_from_logits
from .robustness import adversarial, perturb
from .store.checkpoints import CHECKPOINT_SUFFIX
from .store.evidence_records import (
    CLEAN_LEVELS,
    Calibration,
    Evidence,
    Reliability,
    RobustnessCurve,
    Selective,
)
from .store.records import CheckpointMeta, library_versions, utc_now

PARTS = ("robustness", "calibration", "selective")
OCCLUSION_CENTRE = (14, 14)
NOISE_SEED = 0  # the same noise for every model, so their curves compare like with like
TEMPERATURE_RANGE = (0.05, 20.0)
HISTOGRAM_BINS = 20
CALIBRATION_BINS = 15

Progress = Callable[[int, int], None]


# --- robustness ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Corruption:
    """One way of spoiling the test digits, at increasing ``levels`` (sorted for plotting; ``clean`` among them is
    the level that changes nothing, and is never applied; the record keeps each corruption's in ``CLEAN_LEVELS``)."""

    name: str
    title: str
    unit: str
    levels: tuple[float, ...]
    apply: Callable[[nn.Module, Any, float], np.ndarray] = field(repr=False, compare=False)

    @property
    def clean(self) -> float:
        return CLEAN_LEVELS[self.name]

    def __post_init__(self) -> None:
        if self.clean not in self.levels:
            raise ValueError(f"the clean level {self.clean} of {self.name!r} is not among its levels {self.levels}")


CORRUPTIONS: dict[str, Corruption] = {corruption.name: corruption for corruption in (
    Corruption("rotation", "Rotation", "degrees", (0, 15, 30, 45, 60),
               lambda network, images, level: perturb(images, rotate=level)),
    Corruption("shift", "Shift to the right", "pixels", (0, 1.5, 3, 4.5, 6),
               lambda network, images, level: perturb(images, shift=(level, 0))),
    Corruption("scale", "Zoom", "factor", (0.6, 0.8, 1.0, 1.2, 1.4),
               lambda network, images, level: perturb(images, scale=level)),
    Corruption("thickness", "Stroke width", "pixels grown", (-2, -1, 0, 1, 2),
               lambda network, images, level: perturb(images, thickness=int(level))),
    Corruption("noise", "Gaussian noise", "σ (0–1 intensity)", (0, 0.25, 0.5, 0.75, 1.0),
               lambda network, images, level: perturb(images, noise=level, seed=NOISE_SEED)),
    Corruption("occlusion", "Occlusion of the centre", "patch side (pixels)", (0, 4, 8, 12, 16),
               lambda network, images, level: perturb(images, occlude=(*OCCLUSION_CENTRE, int(level)))),
    Corruption("fgsm", "FGSM attack", "ε (0–1 intensity)", (0, 0.05, 0.1, 0.2, 0.3),
               lambda network, images, level: adversarial(network, images, level, "fgsm")),
)}


def _accuracy(network: nn.Module, images, labels: np.ndarray) -> float:
    return float((predict_proba(network, images).argmax(axis=1) == labels).mean())


def robustness_curves(network: nn.Module, images, labels, *, corruptions: Iterable[str] | None = None,
                      progress: Progress | None = None) -> dict[str, RobustnessCurve]:
    """Accuracy of ``network`` on ``images`` (uint8 (N, 28, 28)) under each corruption (names from CORRUPTIONS;
    all by default) at each of its levels. The clean level is the plain test accuracy, computed once and never
    corrupted; ``progress(done, total)`` is called after each level (the clean ones included)."""
    names = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    unknown = [name for name in names if name not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"unknown corruption(s) {', '.join(map(repr, unknown))}; choose from {', '.join(CORRUPTIONS)}")
    labels = _labels(labels)
    total = sum(len(CORRUPTIONS[name].levels) for name in names)
    done = 0
    clean_accuracy = _accuracy(network, images, labels) if names else None
    curves = {}
    for name in names:
        corruption = CORRUPTIONS[name]
        accuracy = []
        for level in corruption.levels:
            if level == corruption.clean:
                accuracy.append(clean_accuracy)
            else:
                accuracy.append(_accuracy(network, corruption.apply(network, images, level), labels))
            done += 1
            if progress is not None:
                progress(done, total)
        curves[name] = RobustnessCurve(name, tuple(float(level) for level in corruption.levels), tuple(accuracy),
                                       float(corruption.clean))
    return curves


# --- calibration ---------------------------------------------------------------------------------------------------

def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / T), in float64."""
    scaled = torch.as_tensor(logits, dtype=torch.float64) / temperature
    return float(F.cross_entropy(scaled, torch.as_tensor(labels, dtype=torch.long)))


def fit_temperature(logits, labels) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 that minimises the NLL of softmax(logits / T) on held-out
    digits, by L-BFGS over log T (so T stays positive), clamped to TEMPERATURE_RANGE. Dividing all logits by one T
    never changes which class is largest, only how sure the model claims to be."""
    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    target = torch.as_tensor(_labels(labels), dtype=torch.long)
    if len(logits) == 0:
        return 1.0
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), target)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):
        return 1.0
    return float(np.clip(temperature, *TEMPERATURE_RANGE))


def _top_label(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(top-label confidence in float64 clipped to [0, 1], whether the top label is right)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return np.clip(probabilities.max(axis=1), 0.0, 1.0), probabilities.argmax(axis=1) == labels


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1], closed on the right: ((k-1)/bins, k/bins], the first one [0, 1/bins] (the
    binning of scikit-learn's calibration_curve)."""
    return np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], confidence)


def reliability(probabilities: np.ndarray, labels, bins: int = CALIBRATION_BINS) -> Reliability:
    confidence, correct = _top_label(probabilities, _labels(labels))
    if len(confidence) == 0:
        return Reliability((), (), ())
    accuracy, mean_confidence = calibration_curve(correct.astype(int), confidence, pos_label=1, n_bins=bins,
                                                  strategy="uniform")
    counts = np.bincount(_bin_index(confidence, bins), minlength=bins)
    return Reliability(tuple(map(float, mean_confidence)), tuple(map(float, accuracy)),
                       tuple(int(count) for count in counts[counts > 0]))


def expected_calibration_error(probabilities: np.ndarray, labels, bins: int = CALIBRATION_BINS) -> float:
    """Top-label ECE: ECE = Σ_b (n_b / N) · |acc_b − conf_b| over ``bins`` equal-width confidence bins B_b (as in
    ``_bin_index``), where n_b = |B_b|, acc_b is the share of B_b whose top label is right and conf_b their mean
    top-label confidence. 0 is perfectly calibrated; empty bins add nothing."""
    confidence, correct = _top_label(probabilities, _labels(labels))
    if len(confidence) == 0:
        return 0.0
    which = _bin_index(confidence, bins)
    right = np.bincount(which, weights=correct.astype(np.float64), minlength=bins)
    sure = np.bincount(which, weights=confidence, minlength=bins)
    return float(np.abs(right - sure).sum() / len(confidence))  # Σ n_b/N·|right_b/n_b − sure_b/n_b|


def confidence_histogram(probabilities: np.ndarray, bins: int = HISTOGRAM_BINS) -> tuple[int, ...]:
    """How many digits have their top-label confidence in each of ``bins`` equal bins on [0, 1] (numpy's
    histogram: [a, b), the last one closed)."""
    confidence = np.clip(np.asarray(probabilities, dtype=np.float64).max(axis=1), 0.0, 1.0) \
        if len(probabilities) else np.zeros(0)
    counts, _ = np.histogram(confidence, bins=bins, range=(0.0, 1.0))
    return tuple(int(count) for count in counts)


def calibration(val_logits, val_labels, test_logits, test_labels, bins: int = CALIBRATION_BINS) -> Calibration:
    """Fit the temperature on the validation logits, then measure the test set before and after dividing by it."""
    val_logits, test_logits = np.asarray(val_logits, dtype=np.float64), np.asarray(test_logits, dtype=np.float64)
    val_labels, test_labels = _labels(val_labels), _labels(test_labels)
    temperature = fit_temperature(val_logits, val_labels)
    before = probabilities_from_logits(test_logits)
    after = probabilities_from_logits(test_logits / temperature)
    return Calibration(
        temperature=temperature, bins=bins, count=len(test_labels),
        ece_before=expected_calibration_error(before, test_labels, bins),
        ece_after=expected_calibration_error(after, test_labels, bins),
        test_nll_before=_nll(test_logits, test_labels), test_nll_after=_nll(test_logits, test_labels, temperature),
        val_nll_before=_nll(val_logits, val_labels), val_nll_after=_nll(val_logits, val_labels, temperature),
        reliability_before=reliability(before, test_labels, bins),
        reliability_after=reliability(after, test_labels, bins),
        histogram_before=confidence_histogram(before), histogram_after=confidence_histogram(after),
    )


# --- selective prediction ------------------------------------------------------------------------------------------

def selective_prediction(probabilities, labels, target: float = 0.999, points: int = 101) -> Selective:
    """The risk–coverage curve at ``points`` coverages from 0.01 to 1 (accuracy of the ⌈c·N⌉ most confident digits),
    the lowest threshold that keeps ``target`` accuracy and its coverage, and the AURC (see ``Selective``)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = _labels(labels)
    count = len(labels)
    if count == 0:
        return Selective(target, (), (), None, None, 0.0)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    order = np.argsort(-confidence, kind="stable")
    confidence, correct = confidence[order], correct[order]
    accepted = np.arange(1, count + 1)
    accuracy = np.cumsum(correct) / accepted
    coverages = np.linspace(0.01, 1.0, points)
    taken = np.clip(np.ceil(coverages * count - 1e-9).astype(int), 1, count)
    # A threshold accepts every digit at least as confident, so only the last of each run of equal confidences
    # is a coverage a threshold can give.
    boundary = np.append(confidence[1:] < confidence[:-1], True)
    reachable = np.flatnonzero(boundary & (accuracy >= target))
    threshold = coverage = None
    if len(reachable):
        last = reachable[-1]
        threshold, coverage = float(confidence[last]), float(accepted[last] / count)
    return Selective(float(target), tuple(float(c) for c in coverages), tuple(float(a) for a in accuracy[taken - 1]),
                     threshold, coverage, float(np.mean(1.0 - accuracy)))


# --- disagreements -------------------------------------------------------------------------------------------------

def disagreement_counts(predictions: Mapping[str, np.ndarray]) -> np.ndarray:
    """k×k int matrix, models in the mapping's order: on how many images models i and j answer differently."""
    stacked = np.stack([np.asarray(answers) for answers in predictions.values()]) if predictions \
        else np.zeros((0, 0), dtype=int)
    return (stacked[:, None, :] != stacked[None, :, :]).sum(axis=2).astype(np.int64)


def disagreement_outcome(predictions_a, predictions_b, labels) -> dict[str, np.ndarray]:
    """Among the images where two models disagree, the indices where only the first is right ("first_right"),
    only the second ("second_right"), or neither ("both_wrong"); disjoint, and together all the disagreements."""
    a, b, labels = np.asarray(predictions_a), np.asarray(predictions_b), _labels(labels)
    differ = a != b
    return {"first_right": np.flatnonzero(differ & (a == labels)),
            "second_right": np.flatnonzero(differ & (b == labels)),
            "both_wrong": np.flatnonzero(differ & (a != labels) & (b != labels))}


def compute_evidence(network: nn.Module, meta: CheckpointMeta, test_data, validation_data=None, *,
                     parts: Iterable[str] = PARTS, progress: Progress | None = None) -> Evidence:
    """The requested ``parts`` of the evidence for ``network`` on ``test_data`` (images, labels); the calibration
    needs ``validation_data`` (images, labels) and is None without it. ``progress`` follows the robustness curves,
    by far the longest part."""
    parts = tuple(parts)
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        raise ValueError(f"unknown evidence part(s) {', '.join(map(repr, unknown))}; choose from {', '.join(PARTS)}")
    images, labels = test_data
    labels = _labels(labels)
    # The bulk passes run on the folded copy, as ``evaluate`` does: 1.6x faster through MobileNet, and the clean
    # level of every curve is then exactly the saved evaluation's test accuracy.
    bulk = folded_for_inference(network)
    logits = predict_logits(bulk, images) if {"calibration", "selective"} & set(parts) else None
    robustness = robustness_curves(bulk, images, labels, progress=progress) if "robustness" in parts else None
    calibrated = None
    if "calibration" in parts and validation_data is not None and len(validation_data[0]):
        calibrated = calibration(predict_logits(bulk, validation_data[0]), validation_data[1], logits, labels)
    selective = selective_prediction(probabilities_from_logits(logits), labels) if "selective" in parts else None
    return Evidence(meta.model, meta.path.name if meta.path is not None else f"{meta.model}{CHECKPOINT_SUFFIX}",
                    robustness, calibrated, selective, utc_now(), library_versions(), weights_id=meta.weights_id)


# --- helpers -------------------------------------------------------------------------------------------------------

def _labels(labels) -> np.ndarray:
    return labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
