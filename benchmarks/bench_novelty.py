"""Is it a digit at all? How well each model's novelty score (mnist_models.novelty) tells digits from non-digits.

Every model is calibrated on the validation digits its weights never trained on (the held-out split of MNIST's
training images), at several false-rejection rates, then scored on:

- real digits: the MNIST test set as it is; test digits drawn again on a 280×280 canvas (upscaled ×10); drawn small
  (20–60 px) somewhere on the canvas; drawn with a thin pen (the digit's centre line, 9–13 px wide on the canvas,
  about 1 px after preprocessing) and with a hairline (3–7 px, well under MNIST's strokes);
- inputs with no digit: a filled disc anywhere, of any size (a tap or a dot), a filled rectangle (sides within 1:2.5),
  uniform noise over the canvas, random scribbles (a polyline of 4–11 points), a capital or small letter that looks
  unlike a digit (Pillow's default font), Fashion-MNIST test pictures as they are (28×28) and through the
  preprocessing, and an evenly lit sheet of paper with a shadow across it.

Two paths to the models. The models' own evidence is measured on every picture through the MNIST steps alone (crop
to the ink, fit in 20×20, centre by mass: ``mnist_steps``, as ``preprocess.py`` did before it judged the ink), so a
family the ink analysis refuses is still measured. The Draw page's whole answer is measured through
``preprocess_drawing``: refused by the ink analysis, or by the models' combined rule on what it hands on.

Printed: per model, the share of real digits rejected and of non-digits detected at the default rate; each score's
mean ROC AUC (test digits against each non-digit family); the combined rule over the six models (k of 6 flag) and
over every selection of models ("at least half of the selected models flag it", ``novelty.refuse``); the page's
whole verdict (ink analysis, then that rule over all six models).

Fashion-MNIST's test pictures come from the data layer (``load_dataset("fashion", ...)``: the data root's
FashionMNIST/raw, or Debian's dataset-fashion-mnist package); without it those families are skipped.

Run from the repository root:

    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_novelty  # benchmarks/results/novelty.json
    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_novelty --quick
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from benchmarks.common import (
    add_threads_option,
    apply_threads,
    environment,
    format_table,
    print_environment,
    write_json,
)
from mnist_models.data import DatasetMissingError, load_dataset, load_mnist, split_train_validation
from mnist_models.errors import DigitLabError
from mnist_models.inference import predict_logits
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.novelty import (
    DEFAULT_FALSE_REJECTION_RATE,
    DEFAULT_SCORE,
    REFUSE_SHARE,
    novelty_scores,
    threshold_from_scores,
)
from mnist_models.preprocess import preprocess_drawing
from mnist_models.store.checkpoints import CheckpointError, load_checkpoint, load_evaluation
from mnist_models.store.records import NOVELTY_SCORES

RESULTS = Path(__file__).resolve().parent / "results" / "novelty.json"
CANVAS = 280
SEED = 20261123
RATES = (0.005, 0.01, 0.02)
REAL = ("test", "redrawn", "small", "thin", "hairline")
NOT_DIGITS = ("dot", "rectangle", "noise", "scribble", "letter", "fashion", "fashion_drawn", "shadow")
LETTERS = "ACEFHKMNRUVWXacehkmnrtuvwx"  # ones not shaped like a digit


def _blank() -> Image.Image:
    return Image.new("L", (CANVAS, CANVAS), 0)


def _place(digit: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    top, left = rng.integers(0, CANVAS - size + 1, 2)
    canvas[top:top + size, left:left + size] = np.array(Image.fromarray(digit).resize((size, size),
                                                                                       Image.Resampling.BILINEAR))
    return canvas


def _centre_line(digit: np.ndarray, radius: int) -> np.ndarray:
    """The digit upscaled to the canvas, thinned to its centre line (the ridge of its distance transform), then
    drawn with a round pen of ``radius``."""
    ink = np.array(Image.fromarray(digit).resize((CANVAS, CANVAS), Image.Resampling.BILINEAR)) >= 128
    distance = ndimage.distance_transform_edt(ink)
    ridge = ink & (distance >= ndimage.maximum_filter(distance, size=3) - 0.5)
    offsets = np.arange(-radius, radius + 1)
    pen = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius ** 2
    return (ndimage.binary_dilation(ridge, pen) * 255).astype(np.uint8)


def _disc(rng: np.random.Generator) -> np.ndarray:
    image, radius = _blank(), int(rng.integers(2, 60))
    x, y = rng.integers(radius, CANVAS - radius, 2)
    ImageDraw.Draw(image).ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    return np.array(image)


def _rectangle(rng: np.random.Generator) -> np.ndarray:
    image, width = _blank(), int(rng.integers(10, 200))
    height = min(int(width * rng.uniform(0.4, 2.5)), CANVAS - 10)
    x, y = rng.integers(0, CANVAS - max(width, height), 2)
    ImageDraw.Draw(image).rectangle([x, y, x + width, y + height], fill=255)
    return np.array(image)


def _scribble(rng: np.random.Generator) -> np.ndarray:
    image = _blank()
    points = [tuple(int(v) for v in rng.integers(20, CANVAS - 20, 2)) for _ in range(int(rng.integers(4, 12)))]
    ImageDraw.Draw(image).line(points, fill=255, width=int(rng.integers(8, 25)), joint="curve")
    return np.array(image)


def _letter(rng: np.random.Generator) -> np.ndarray:
    image = _blank()
    font = ImageFont.load_default(size=int(rng.integers(120, 240)))
    ImageDraw.Draw(image).text((CANVAS // 2, CANVAS // 2), LETTERS[int(rng.integers(len(LETTERS)))], fill=255,
                               font=font, anchor="mm")
    return np.array(image)


def _shadow(rng: np.random.Generator) -> np.ndarray:
    """A photo of blank paper: light grey, a shadow darkening one side, sensor noise."""
    across = np.linspace(0, 1, CANVAS)[None, :] ** rng.uniform(1, 4)
    paper = 0.85 - rng.uniform(0.15, 0.5) * across + rng.normal(0, 0.02, (CANVAS, CANVAS))
    paper = np.rot90(paper, int(rng.integers(4)))
    return (np.clip(paper, 0, 1) * 255).astype(np.uint8)


def _fashion_test_images() -> np.ndarray | None:
    """Fashion-MNIST's test pictures, None where it is not installed."""
    try:
        return load_dataset("fashion", "test", download=False)[0].numpy()
    except DatasetMissingError:
        return None


def mnist_steps(canvas: np.ndarray) -> np.ndarray | None:
    """MNIST's steps alone for a gray picture (``preprocess.py``'s before the ink analysis): ink measured from the
    border's median, cut to the ink's box, fitted in 20×20, centred by mass in 28×28. None for a blank picture."""
    luminance = canvas.astype(np.float32) / 255.0
    border = np.concatenate([luminance[0], luminance[-1], luminance[1:-1, 0], luminance[1:-1, -1]])
    background = float(np.median(border))
    lighter = background <= (float(luminance.min()) + float(luminance.max())) / 2.0
    ink = np.clip(luminance - background if lighter else background - luminance, 0.0, None)
    if ink.max() < 0.1:
        return None
    ink /= ink.max()
    rows, cols = np.flatnonzero((ink >= 0.2).any(axis=1)), np.flatnonzero((ink >= 0.2).any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    cropped = np.where(ink[box] >= 0.2, ink[box], np.float32(0.0))
    height, width = cropped.shape
    scale = 20 / max(height, width)
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    fitted = np.array(Image.fromarray(cropped).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                                      resample), dtype=np.float32)
    height, width = fitted.shape
    mass_row, mass_col = ndimage.center_of_mass(fitted)
    top, left = (int(np.clip(round(14 - mass_row), 0, 28 - height)), int(np.clip(round(14 - mass_col), 0, 28 - width)))
    centred = np.zeros((28, 28), np.float32)
    centred[top:top + height, left:left + width] = fitted
    return np.round(centred * (255.0 / centred.max())).astype(np.uint8)


@dataclass
class Family:
    """One family's pictures as the models receive them: through the MNIST steps (every picture), and through
    ``preprocess_drawing`` (those it accepts; ``accepted`` marks which)."""

    steps: np.ndarray  # uint8 (n, 28, 28)
    accepted: np.ndarray  # bool, one per picture drawn (blank ones included)
    pipeline: np.ndarray  # uint8 (accepted.sum(), 28, 28)
    drawn: bool = True  # False: 28×28 pictures handed to the models as they are


def _as_is(images: np.ndarray) -> Family:
    return Family(images, np.ones(len(images), bool), images, drawn=False)


def make_families(test_images: np.ndarray, count: int, fashion: np.ndarray | None, seed: int = SEED
                  ) -> dict[str, Family]:
    rng = np.random.default_rng(seed)
    digits = test_images[rng.choice(len(test_images), count, replace=False)]
    canvases = {
        "redrawn": lambda i: np.array(Image.fromarray(digits[i]).resize((CANVAS, CANVAS), Image.Resampling.BILINEAR)),
        "small": lambda i: _place(digits[i], int(rng.integers(20, 61)), rng),
        "thin": lambda i: _centre_line(digits[i], int(rng.integers(4, 7))),
        "hairline": lambda i: _centre_line(digits[i], int(rng.integers(1, 4))),
        "dot": lambda i: _disc(rng),
        "rectangle": lambda i: _rectangle(rng),
        "noise": lambda i: rng.integers(0, 256, (CANVAS, CANVAS), dtype=np.uint8),
        "scribble": lambda i: _scribble(rng),
        "letter": lambda i: _letter(rng),
        "shadow": lambda i: _shadow(rng),
    }
    if fashion is not None:
        pictures = fashion[rng.choice(len(fashion), count, replace=False)]
        canvases["fashion_drawn"] = lambda i: pictures[i]
    families = {}
    for name, draw in canvases.items():
        steps, accepted, pipeline = [], [], []
        for index in range(count):
            canvas = draw(index)
            stepped = mnist_steps(canvas)
            if stepped is not None:  # else blank: nothing for a model
                steps.append(stepped)
            try:
                pipeline.append(preprocess_drawing(canvas))
                accepted.append(True)
            except (DigitLabError, ValueError):  # no ink, or what the ink analysis refuses
                accepted.append(False)
        families[name] = Family(np.stack(steps) if steps else np.zeros((0, 28, 28), np.uint8), np.array(accepted, bool),
                                np.stack(pipeline) if pipeline else np.zeros((0, 28, 28), np.uint8))
    if fashion is not None:
        families["fashion"] = _as_is(pictures.copy())
    return families


def share(flags: np.ndarray) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _logits(network, images: np.ndarray) -> np.ndarray:
    return predict_logits(network, images) if len(images) else np.zeros((0, 10), np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, help="pictures per drawn family (default 1000; 60 quick)")
    parser.add_argument("--test-images", type=int, help="MNIST test images scored (default all 10000; 500 quick)")
    parser.add_argument("--validation-images", type=int,
                        help="validation images calibrated on (default all 5000 of the split; 1000 quick)")
    parser.add_argument("--model", action="append", choices=MODEL_NAMES, help="only these models (default all)")
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny sizes")
    parser.add_argument("--json", metavar="FILE", help=f"write the results there (default {RESULTS} for a full "
                                                        f"run; none for --quick)")
    add_threads_option(parser)
    args = parser.parse_args()
    apply_threads(args.threads, args.quick)
    count = args.count or (60 if args.quick else 1000)
    info = environment()
    print_environment(info)

    test_images = load_mnist("test")[0].numpy()
    train_images, train_labels = load_mnist("train")
    _, (validation, _) = split_train_validation(train_images, train_labels)  # as the shipped models were trained
    validation = validation[:args.validation_images or (1000 if args.quick else None)].numpy()
    families = {"test": _as_is(test_images[:args.test_images or (500 if args.quick else None)]),
                **make_families(test_images, count, _fashion_test_images())}
    real = [name for name in REAL if name in families]
    not_digits = [name for name in NOT_DIGITS if name in families]

    # logits[model][family]: through the MNIST steps; piped[model][family]: what preprocess_drawing accepted
    logits, piped, stored, skipped = {}, {}, {}, {}
    for name in args.model or MODEL_NAMES:
        try:
            network, meta = load_checkpoint(name)
        except CheckpointError as error:
            skipped[name] = str(error)
            continue
        logits[name] = {family: _logits(network, images.steps) for family, images in families.items()}
        logits[name]["validation"] = _logits(network, validation)
        piped[name] = {family: _logits(network, images.pipeline) if images.drawn else logits[name][family]
                       for family, images in families.items()}
        try:
            novelty = load_evaluation(name, None, meta).novelty
        except CheckpointError:
            novelty = None
        if novelty is not None:
            stored[name] = {"threshold": novelty.threshold, "score": novelty.score,
                            "false_rejection_rate": novelty.false_rejection_rate,
                            "test_rejected": share(novelty_scores(logits[name]["test"], novelty.score,
                                                                  novelty.temperature or 1.0) > novelty.threshold)}
    for name, why in skipped.items():
        print(f"  {name}: skipped, {why}")
    models = list(logits)

    # flags[score][rate][model][family]: flagged as novel, with the threshold from the validation scores
    flags: dict[str, dict[float, dict[str, dict[str, np.ndarray]]]] = {}
    piped_flags: dict[float, dict[str, dict[str, np.ndarray]]] = {}
    auc: dict[str, dict[str, float]] = {}
    for score in NOVELTY_SCORES:
        flags[score], auc[score] = {}, {}
        for model in models:
            scores = {family: novelty_scores(values, score) for family, values in logits[model].items()}
            for rate in RATES:
                threshold = threshold_from_scores(scores["validation"], score, rate).threshold
                flags[score].setdefault(rate, {})[model] = {family: scores[family] > threshold for family in families}
                if score == DEFAULT_SCORE:
                    piped_flags.setdefault(rate, {})[model] = {
                        family: novelty_scores(values, score) > threshold for family, values in piped[model].items()}
            auc[score][model] = float(np.mean([
                roc_auc_score(np.r_[np.zeros(len(scores["test"])), np.ones(len(scores[family]))],
                              np.r_[scores["test"], scores[family]])
                for family in not_digits if len(scores[family])]))

    default = flags[DEFAULT_SCORE][DEFAULT_FALSE_REJECTION_RATE]
    per_model = {model: {family: share(default[model][family]) for family in families} for model in models}
    print(f"\nthe models' own evidence ({DEFAULT_SCORE} score, threshold at {DEFAULT_FALSE_REJECTION_RATE:.1%} of "
          f"validation digits), pictures through the MNIST steps alone: share flagged as not a digit (real digits: "
          f"lower is better; the others: higher is better)")
    print(format_table(["model", *families], [[model, *(percent(row[family]) for family in families)]
                                              for model, row in per_model.items()]))

    print("\nmean ROC AUC, MNIST test digits against each non-digit family (1.0: always told apart)")
    print(format_table(["score", *models], [[score, *(f"{auc[score][model]:.4f}" for model in models)]
                                            for score in NOVELTY_SCORES]))

    combined: dict[str, Any] = {}
    if len(models) > 1:
        rows = []
        for rate in RATES:
            votes = {family: np.sum([flags[DEFAULT_SCORE][rate][model][family] for model in models], axis=0)
                     for family in families}
            for needed in range(1, len(models) + 1):
                key = f"{rate}:{needed}"
                combined[key] = {family: share(votes[family] >= needed) for family in families}
                rows.append([f"{rate:.1%}, at least {needed} of {len(models)}",
                             *(percent(combined[key][family]) for family in families)])
        print(f"\nall {len(models)} models, {DEFAULT_SCORE} score: flagged when at least k models flag it")
        print(format_table(["rate, rule", *families], rows))

    selections: dict[str, Any] = {}
    for rate in RATES:
        per_selection = []
        for size in range(1, len(models) + 1):
            for chosen in itertools.combinations(models, size):
                votes = {family: np.sum([flags[DEFAULT_SCORE][rate][model][family] for model in chosen], axis=0)
                         for family in families}
                per_selection.append({family: share(votes[family] >= REFUSE_SHARE * size) for family in families})
        selections[str(rate)] = {
            family: {"mean": float(np.mean([row[family] for row in per_selection])),
                     "worst": float(max(row[family] for row in per_selection) if family in real
                                    else min(row[family] for row in per_selection))}
            for family in families if len(families[family].steps)}
    print(f"\nflagged when at least half of the selected models flag it (novelty.refuse), over all "
          f"{2 ** len(models) - 1} selections: mean (worst) share")
    print(format_table(["rate", *families], [
        [f"{float(rate):.1%}", *(f"{percent(row[family]['mean'])} ({percent(row[family]['worst'])})"
                                 if family in row else "–" for family in families)]
        for rate, row in selections.items()]))

    page: dict[str, Any] = {}
    for family, images in families.items():
        drawn = len(images.accepted)
        votes = np.sum([piped_flags[DEFAULT_FALSE_REJECTION_RATE][model][family] for model in models], axis=0)
        by_models = int(np.sum(votes >= REFUSE_SHARE * len(models))) if models else 0
        by_ink = int(drawn - images.accepted.sum())
        page[family] = {"pictures": drawn, "refused_by_ink": by_ink, "refused_by_models": by_models,
                        "refused": (by_ink + by_models) / drawn if drawn else None}
    print(f"\nthe Draw page's verdict: preprocess_drawing's ink analysis, then at least half of the "
          f"{len(models)} models at {DEFAULT_FALSE_REJECTION_RATE:.1%}")
    print(format_table(["family", "pictures", "ink analysis refused", "models refused", "answer refused"], [
        [family, row["pictures"], row["refused_by_ink"], row["refused_by_models"], percent(row["refused"])]
        for family, row in page.items()]))
    if stored:
        print("\nthresholds stored in the evaluations: " + ", ".join(
            f"{model} {row['threshold']:.2f} (rejects {percent(row['test_rejected'])} of test digits)"
            for model, row in stored.items()))

    output = args.json or (None if args.quick else RESULTS)
    if output:
        write_json(output, {
            "benchmark": "novelty", "environment": info, "count": count,
            "images": {family: len(images.steps) for family, images in families.items()},
            "validation_images": len(validation), "real_digits": real, "not_digits": not_digits,
            "default": {"score": DEFAULT_SCORE, "false_rejection_rate": DEFAULT_FALSE_REJECTION_RATE,
                        "refuse_share": REFUSE_SHARE},
            "per_model": per_model,
            "per_model_all": {score: {str(rate): {model: {family: share(values) for family, values in row.items()}
                                                  for model, row in by_model.items()}
                                      for rate, by_model in by_rate.items()} for score, by_rate in flags.items()},
            "mean_auc": auc, "all_models_k_of_n": combined, "half_of_selection": selections, "page": page,
            "stored_thresholds": stored, "skipped": skipped,
        })


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
