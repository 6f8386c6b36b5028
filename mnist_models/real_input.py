"""Real input, not generated here: other writers' digits and MNIST's own digits as pictures of them reach the app
(a close-up photo, a tight scan, a low-resolution camera, a thicker or thinner pen), each source kept apart, and
pictures without a digit as controls.

The models read MNIST's test set at 99%+, but that set was prepared the way the models were trained; what reaches
the app is prepared by ``mnist_models.preprocess``, which refuses a picture it finds no digit in. So each picture is
tallied, per model, as refused (by preprocessing: no model saw it), right or wrong; for a control, refused or read
as a digit (``wrong``: any digit is wrong). Refusing less only helps if the controls are still refused.

Every source is deterministic for a seed. ``evaluate_source`` preprocesses each picture once for all models, then
runs one batched pass per model. The results are kept as a versioned record (``RealInputResults``, written by
``benchmarks/bench_real_input.py`` to benchmarks/results/real_input.json) that the dashboard reads with
``load_real_input_results``.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from torch import nn

from .inference import predict_logits
from .novelty import is_novel
from .paths import PROJECT_ROOT
from .preprocess import EmptyDrawingError, NotADigitError, preprocess_drawing
from .store.records import Evaluation, RecordError, as_mapping, check_version, field_of, utc_now

CANVAS = 280
"""The Draw page's canvas side: the size the enlarged sources are given at."""
NO_DIGIT = -1
"""The label of a control picture: it holds no digit, so any digit a model reads in it is wrong."""
UCI_SIZES = (28, 64, 140)
"""The sides the ``uci-sizes`` source enlarges the 8×8 digits to, in turn."""
LETTERS = "".join(sorted(set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") - set("OoQDlIiJjSsZzBbgqG")))
"""The letters rendered as controls: those that a careful reader could not take for a digit (no O, l, I, S, Z, B,
g, q, b and their kin)."""
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
RESULTS_PATH = PROJECT_ROOT / "benchmarks" / "results" / "real_input.json"
"""Where the benchmark writes the results and the dashboard reads them (unless RESULTS_ENV names another file)."""
RESULTS_ENV = "DIGIT_LAB_REAL_INPUT_RESULTS"
RESULTS_VERSION = 1

DESCRIPTIONS = {
    "uci-canvas": "scikit-learn's UCI digits (43 writers, 8×8), enlarged smoothly to the 280 px canvas, light on dark",
    "uci-paper": "the UCI digits as dark ink on light paper, photographed: uneven light, noise, JPEG",
    "uci-sizes": f"the UCI digits enlarged smoothly to {', '.join(map(str, UCI_SIZES))} px, light on dark",
    "mnist-tight": "MNIST test digits cropped to their ink and enlarged to 280 px: a close-up photo or tight scan",
    "mnist-lowres": "MNIST test digits reduced to 8–16 px, then enlarged smoothly to 280 px: a low-resolution camera",
    "mnist-paper": "MNIST test digits as dark ink on light paper, photographed: uneven light, noise, JPEG",
    "mnist-thick": "MNIST test digits enlarged to 280 px and thickened (grey dilation): a thicker pen",
    "mnist-thin": "MNIST test digits enlarged to 280 px and thinned (grey erosion): a thinner pen",
    "no-digit": "control: the ink gate's pictures without a digit (taps, specks, lines, blobs, noise, blank paper)",
    "fashion": "control: Fashion-MNIST test pictures of clothing, enlarged to 280 px",
    "letters": f"control: letters that are no digit look-alikes ({len(LETTERS)} of them), DejaVu Sans, light on dark",
}
"""One line per source, for tables and the dashboard."""


@dataclass(frozen=True)
class Source:
    """A named list of (picture, true label) pairs; a control's labels are all NO_DIGIT."""

    name: str
    description: str
    cases: list[tuple[np.ndarray, int]]
    control: bool = False

    def __len__(self) -> int:
        return len(self.cases)


class Classifier(Protocol):
    """What ``evaluate_source`` needs of a catalog entry (``mnist_models.serving.catalog.CatalogEntry``)."""

    name: str
    network: nn.Module | None
    evaluation: Evaluation | None


# ---------------------------------------------------------------------------------------------------------------
# Rendering helpers


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)


def enlarge(image: np.ndarray, size: tuple[int, int], resample=Image.Resampling.BICUBIC) -> np.ndarray:
    """``image`` (float 0..1, or uint8) resized smoothly to ``size`` (width, height), float 0..1: how a small
    picture reaches a screen or a canvas."""
    unit = image.astype(np.float32) / 255 if image.dtype == np.uint8 else image.astype(np.float32)
    resized = Image.fromarray(unit, mode="F").resize(size, resample)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def uneven_light(shape: tuple[int, int], rng: np.random.Generator, shadow: float) -> np.ndarray:
    """Light over a page, 1 at its brightest and dimmed by up to ``shadow`` towards one side: a desk lamp."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]] / max(shape)
    angle = rng.uniform(0, 2 * np.pi)
    along = np.cos(angle) * cols + np.sin(angle) * rows
    return 1.0 - shadow * (along - along.min()) / max(float(np.ptp(along)), 1e-6)


def photographed(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``ink`` (float 0..1, 1 = ink) as dark ink on light paper, photographed: uneven light, sensor noise, an RGB
    JPEG round trip. What a phone makes of a digit written on paper."""
    paper, ink_level = rng.uniform(0.7, 0.92), rng.uniform(0.05, 0.3)
    reflectance = paper - (paper - ink_level) * ink
    gray = reflectance * uneven_light(ink.shape, rng, rng.uniform(0.0, 0.4)) + rng.normal(0, 0.015, ink.shape)
    rgb = np.repeat(_to_uint8(gray)[..., None], 3, axis=2)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(rng.integers(60, 95)))
    return np.array(Image.open(buffer))


def on_paper(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A digit (float 0..1 or uint8, light on dark) enlarged to 60–90% of a 280 px photo, placed anywhere in it
    and photographed (see ``photographed``)."""
    side = int(rng.integers(int(0.6 * CANVAS), int(0.9 * CANVAS) + 1))
    ink = np.zeros((CANVAS, CANVAS), np.float32)
    top, left = (int(value) for value in rng.integers(0, CANVAS - side + 1, size=2))
    ink[top:top + side, left:left + side] = enlarge(digit, (side, side))
    return photographed(ink, rng)


def _picks(total: int, count: int | None, seed: int) -> np.ndarray:
    """``count`` distinct indices of ``total`` (all of them, shuffled, when count is None or larger), the same for
    every source of a family at one seed: the sources differ in how the same digits are rendered, not in which."""
    order = np.random.default_rng(seed).permutation(total)
    return order if count is None else order[:count]


def _rendering_rng(name: str, seed: int) -> np.random.Generator:
    """The random choices of one source's rendering, apart from the other sources'."""
    return np.random.default_rng([seed, list(DESCRIPTIONS).index(name)])


# ---------------------------------------------------------------------------------------------------------------
# Other writers: scikit-learn's UCI digits


def uci_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled UCI handwritten digits: (1,797 images 8×8, float 0..1), labels. 43 writers, none of
    them MNIST's; shipped with scikit-learn, so no download."""
    from sklearn.datasets import load_digits  # here: the rest of the library has no use for it

    digits: Any = load_digits()  # a Bunch; the stubs' return type is a union with (X, y)
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def _uci_source(name: str, render: Callable[[np.ndarray, int, np.random.Generator], np.ndarray],
                count: int | None, seed: int) -> Source:
    images, labels = uci_digits()
    rng = _rendering_rng(name, seed)
    cases = [(render(images[index], turn, rng), int(labels[index]))
             for turn, index in enumerate(_picks(len(images), count, seed))]
    return Source(name, DESCRIPTIONS[name], cases)


def uci_canvas(count: int | None = None, seed: int = 0) -> Source:
    """The UCI digits enlarged smoothly (bicubic) to 280×280, light on dark: what the canvas gives."""
    return _uci_source("uci-canvas", lambda image, _, rng: _to_uint8(enlarge(image, (CANVAS, CANVAS))), count, seed)


def uci_paper(count: int | None = None, seed: int = 0) -> Source:
    """The UCI digits written dark on light paper and photographed (see ``on_paper``)."""
    return _uci_source("uci-paper", lambda image, _, rng: on_paper(image, rng), count, seed)


def uci_sizes(count: int | None = None, seed: int = 0) -> Source:
    """The UCI digits enlarged smoothly (bilinear) to each of UCI_SIZES in turn, light on dark: screenshots and
    thumbnails of a digit."""
    def render(image: np.ndarray, turn: int, rng: np.random.Generator) -> np.ndarray:
        side = UCI_SIZES[turn % len(UCI_SIZES)]
        return _to_uint8(enlarge(image, (side, side), Image.Resampling.BILINEAR))

    return _uci_source("uci-sizes", render, count, seed)


# ---------------------------------------------------------------------------------------------------------------
# MNIST's test digits as real pictures of them arrive


def tight_crop(digit: np.ndarray) -> np.ndarray:
    """An MNIST digit (uint8 28×28) cut to its ink's bounding box and enlarged smoothly so its longer side is 280
    px, float 0..1: a close-up photo or a tight scan, with no margin."""
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    cropped = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = CANVAS / max(cropped.shape)
    size = (max(1, round(cropped.shape[1] * scale)), max(1, round(cropped.shape[0] * scale)))
    return enlarge(cropped, size)


def _mnist_tight(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8(tight_crop(digit))


def _mnist_lowres(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(8, 17))
    small = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BOX))
    return _to_uint8(enlarge(small, (CANVAS, CANVAS)))


def _mnist_paper(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return on_paper(digit, rng)


def _mnist_thick(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    big = _to_uint8(enlarge(digit, (CANVAS, CANVAS), Image.Resampling.BILINEAR))
    return ndimage.grey_dilation(big, size=int(rng.integers(9, 22)))


def _mnist_thin(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    big = _to_uint8(enlarge(digit, (CANVAS, CANVAS), Image.Resampling.BILINEAR))
    return ndimage.grey_erosion(big, size=int(rng.integers(7, 16)))


MNIST_RENDERERS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "mnist-tight": _mnist_tight, "mnist-lowres": _mnist_lowres, "mnist-paper": _mnist_paper,
    "mnist-thick": _mnist_thick, "mnist-thin": _mnist_thin,
}
"""How each MNIST source renders one test digit (uint8 28×28, light on dark)."""


def mnist_source(name: str, images: np.ndarray, labels: np.ndarray, count: int | None = None, seed: int = 0
                 ) -> Source:
    """``count`` of MNIST's test digits (``images`` uint8 (N, 28, 28), ``labels``) rendered as source ``name``
    (one of MNIST_RENDERERS); the digits picked depend only on ``seed`` and ``count`` (the same in every MNIST
    source), their rendering on the seed and the source."""
    render = MNIST_RENDERERS[name]
    rng = _rendering_rng(name, seed)
    cases = [(render(np.asarray(images[index], np.uint8), rng), int(labels[index]))
             for index in _picks(len(images), count, seed)]
    return Source(name, DESCRIPTIONS[name], cases)


# ---------------------------------------------------------------------------------------------------------------
# Controls: pictures without a digit


def control_source(name: str, pictures: Iterable[np.ndarray], description: str | None = None) -> Source:
    """Pictures without a digit as a control source (for corpora assembled elsewhere, such as the ink gate's)."""
    return Source(name, description or DESCRIPTIONS[name], [(picture, NO_DIGIT) for picture in pictures],
                  control=True)


def fashion_control(images: np.ndarray, count: int | None = None, seed: int = 0) -> Source:
    """``count`` Fashion-MNIST test pictures (uint8 (N, 28, 28), light on dark), enlarged smoothly to 280 px:
    clothing, which no model should read as a digit."""
    return control_source("fashion", (_to_uint8(enlarge(images[index], (CANVAS, CANVAS)))
                                      for index in _picks(len(images), count, seed)))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:  # no DejaVu here: Pillow's own scalable font
        return ImageFont.load_default(size=size)


def letter(character: str, rng: np.random.Generator) -> np.ndarray:
    """One letter drawn light on the dark 280 px canvas, at a random size, place and stroke weight."""
    font = _font(int(rng.integers(100, 221)))
    stroke = int(rng.integers(0, 7))
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = (round(value) for value in
                                draw.textbbox((0, 0), character, font=font, stroke_width=stroke))
    x = int(rng.integers(0, max(1, CANVAS - (right - left)))) - left
    y = int(rng.integers(0, max(1, CANVAS - (bottom - top)))) - top
    draw.text((x, y), character, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    return np.asarray(image)


def letters_control(count: int, seed: int = 0) -> Source:
    """``count`` letters (see LETTERS and ``letter``), the letters in turn."""
    rng = _rendering_rng("letters", seed)
    return control_source("letters", (letter(LETTERS[turn % len(LETTERS)], rng) for turn in range(count)))


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class Preprocessed:
    """A source after preprocessing: the 28×28 inputs of the pictures accepted, their indices in the source, and
    each refused picture's index with the finding it was refused for (InkFinding names)."""

    inputs: np.ndarray  # uint8 (accepted, 28, 28)
    accepted: np.ndarray  # int indices into the source
    refused: list[tuple[int, str]]
    seconds: float

    @property
    def findings(self) -> dict[str, int]:
        return dict(Counter(finding for _, finding in self.refused).most_common())


def preprocess_source(source: Source) -> Preprocessed:
    """Every picture of ``source`` through ``preprocess_drawing`` once, so that all models see the same inputs and a
    refusal is counted once. A refusal without a finding (an image that cannot be read) counts as ``EMPTY``."""
    inputs, accepted, refused = [], [], []
    start = time.perf_counter()
    for index, (picture, _) in enumerate(source.cases):
        try:
            inputs.append(preprocess_drawing(picture))
        except NotADigitError as error:
            refused.append((index, error.finding.name))
        except EmptyDrawingError:
            refused.append((index, "EMPTY"))
        else:
            accepted.append(index)
    stacked = np.stack(inputs) if inputs else np.zeros((0, 28, 28), np.uint8)
    return Preprocessed(stacked, np.asarray(accepted, dtype=np.int64), refused, time.perf_counter() - start)


@dataclass(frozen=True)
class ModelTally:
    """One model on one source. refused: by preprocessing (the same for every model); right / wrong: of the rest
    (for a control every digit read is wrong); flagged: of the rest, how many the model's novelty threshold flags
    as unlike its training digits (None without a threshold)."""

    pictures: int
    refused: int
    right: int
    wrong: int
    flagged: int | None = None

    @property
    def accuracy(self) -> float:
        """Right over all pictures, refused ones included: what a person with such pictures gets."""
        return self.right / self.pictures if self.pictures else 0.0

    def to_dict(self) -> dict[str, int | None]:
        return {"pictures": self.pictures, "refused": self.refused, "right": self.right, "wrong": self.wrong,
                "flagged": self.flagged}

    @classmethod
    def from_dict(cls, data: Any) -> ModelTally:
        data = as_mapping(data, "a model's tally")
        tally = cls(*(field_of(data, name, int, required=True) for name in ("pictures", "refused", "right", "wrong")),
                    flagged=field_of(data, "flagged", int))
        if tally.refused + tally.right + tally.wrong != tally.pictures:
            raise RecordError("a model's refused, right and wrong pictures do not add up to its pictures")
        return tally


def tally_model(entry: Classifier, source: Source, preprocessed: Preprocessed) -> ModelTally:
    """One batched forward pass of ``entry``'s network over the accepted inputs, compared with the true labels."""
    assert entry.network is not None
    labels = np.asarray([source.cases[index][1] for index in preprocessed.accepted], dtype=np.int64)
    logits = predict_logits(entry.network, preprocessed.inputs) if len(labels) else np.zeros((0, 10), np.float32)
    right = int((logits.argmax(axis=1) == labels).sum()) if len(labels) else 0
    threshold = entry.evaluation.novelty if entry.evaluation is not None else None
    flagged = int(is_novel(logits, threshold).sum()) if threshold is not None and len(labels) else \
        (0 if threshold is not None else None)
    return ModelTally(len(source), len(preprocessed.refused), right, len(labels) - right, flagged)


@dataclass(frozen=True)
class SourceResult:
    """Every model's tally on one source, the refusals' findings, and the preprocessing time per picture."""

    name: str
    description: str
    control: bool
    pictures: int
    findings: dict[str, int]
    models: dict[str, ModelTally]
    ms_per_picture: float | None = None
    refused_pictures: list[tuple[int, str]] = field(default_factory=list, compare=False)  # not stored

    @property
    def refused(self) -> int:
        return sum(self.findings.values())

    def to_dict(self) -> dict[str, Any]:
        return {"description": self.description, "control": self.control, "pictures": self.pictures,
                "refused": self.refused, "findings": self.findings, "ms_per_picture": self.ms_per_picture,
                "models": {name: tally.to_dict() for name, tally in self.models.items()}}

    @classmethod
    def from_dict(cls, name: str, data: Any) -> SourceResult:
        data = as_mapping(data, f"the source {name!r}")
        findings = as_mapping(field_of(data, "findings", dict) or {}, "the findings")
        if not all(isinstance(count, int) and not isinstance(count, bool) for count in findings.values()):
            raise RecordError(f"the findings of {name!r} should map each finding to a count")
        models = as_mapping(field_of(data, "models", dict, required=True), "the models")
        return cls(name, field_of(data, "description", str) or DESCRIPTIONS.get(name, name),
                   bool(field_of(data, "control", bool)), field_of(data, "pictures", int, required=True),
                   dict(findings), {model: ModelTally.from_dict(tally) for model, tally in models.items()},
                   field_of(data, "ms_per_picture", float))


def evaluate_source(entries: Sequence[Classifier], source: Source) -> SourceResult:
    """Each available model of ``entries`` on ``source``: preprocessing once for all, one batched pass per model."""
    preprocessed = preprocess_source(source)
    models = {entry.name: tally_model(entry, source, preprocessed) for entry in entries if entry.network is not None}
    return SourceResult(source.name, source.description, source.control, len(source), preprocessed.findings, models,
                        1000 * preprocessed.seconds / max(len(source), 1), preprocessed.refused)


# ---------------------------------------------------------------------------------------------------------------
# The record


@dataclass(frozen=True)
class RealInputResults:
    """The measurement as saved: per source, per model, refused / right / wrong; ``titles`` names the models,
    ``skipped`` says which sources were left out and why."""

    sources: dict[str, SourceResult]
    titles: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    created: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    format_version: int = RESULTS_VERSION

    @property
    def digit_sources(self) -> list[SourceResult]:
        return [source for source in self.sources.values() if not source.control]

    @property
    def controls(self) -> list[SourceResult]:
        return [source for source in self.sources.values() if source.control]

    def accuracy(self, model: str) -> float | None:
        """``model``'s share of right answers over every picture of the digit sources (refused ones count as not
        right): its accuracy on real input. None when it was not measured."""
        tallies = [source.models[model] for source in self.digit_sources if model in source.models]
        pictures = sum(tally.pictures for tally in tallies)
        return sum(tally.right for tally in tallies) / pictures if pictures else None

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": RESULTS_VERSION, "created": self.created or utc_now(), "seed": self.seed,
                "titles": self.titles, "skipped": self.skipped,
                "sources": {name: source.to_dict() for name, source in self.sources.items()}}

    @classmethod
    def from_dict(cls, data: Any) -> RealInputResults:
        data = as_mapping(data, "the real-input results")
        version = check_version(field_of(data, "format_version", int, required=True), RESULTS_VERSION,
                                "the real-input results")
        sources = as_mapping(field_of(data, "sources", dict, required=True), "the sources")
        return cls({name: SourceResult.from_dict(name, source) for name, source in sources.items()},
                   dict(field_of(data, "titles", dict) or {}), field_of(data, "seed", int),
                   field_of(data, "created", str), dict(field_of(data, "skipped", dict) or {}), version)


def resolve_results_path() -> Path:
    """The results file the dashboard reads: $DIGIT_LAB_REAL_INPUT_RESULTS when set, else RESULTS_PATH."""
    return Path(os.environ.get(RESULTS_ENV) or RESULTS_PATH).expanduser()


def load_real_input_results(path: str | Path | None = None) -> RealInputResults | None:
    """The saved results (``path``, else ``resolve_results_path()``), or None when the file does not exist: not
    measured yet. A RecordError saying what is wrong for a file that cannot be read, is not such a record, or was
    written by a newer digit-lab: a page shows that instead of breaking."""
    path = resolve_results_path() if path is None else Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RecordError(f"{path} cannot be read: {error}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecordError(f"{path} is not JSON: {error}") from error
    try:
        return RealInputResults.from_dict(data)
    except RecordError as error:
        raise RecordError(f"{path}: {error}") from error
