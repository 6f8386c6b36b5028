"""Turn a drawn or uploaded picture of a digit into an MNIST-style 28x28 input, or say why there is no digit.

MNIST digits were size-normalised to fit a 20x20 box (keeping the aspect
ratio, anti-aliased), then placed in a 28x28 field so that their centre of
mass sits at the centre, as a light digit on a black background. A model
trained on MNIST only sees inputs like that, so user drawings and photos go
through the same steps here before they reach a model.

Before those steps, the ink is measured against the paper it lies on (a photo's
paper may be in shadow on one side), and the ink's shape is checked: a tap, a
speck, a filled square or paper texture is refused with what was found, rather
than scaled up to 20 pixels for a model to call it a "0".
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np
from PIL import Image
from scipy import ndimage

from ._ink import (
    FAINT_CONTRAST,
    INK_THRESHOLD,
    MIN_CONTRAST,
    MIN_SIGNAL_TO_NOISE,
    PaddedPicture,
    PictureInput,
    centre_by_mass,
    crop_to_ink,
    fit_to_box,
    ink_mask,
    likely_polarities,
    measure_against_paper,
    pad_with_paper,
    read_luminance,
    stroke_width,
    to_array,
)
from .errors import DigitLabError
from .segmentation import DigitBox, read_digits, read_number, segment_digits
from .uploads import DecodedUpload, InvalidImageError, load_uploaded_image

__all__ = [
    "INK_THRESHOLD", "DecodedUpload", "DigitBox", "EmptyDrawingError", "InkAnalysis", "InkFinding", "InvalidImageError",
    "NotADigitError", "PreprocessStages", "analyse_ink", "clothing_picture", "load_uploaded_image",
    "preprocess_drawing", "preprocess_stages", "read_digits", "read_number", "segment_digits",
]


SPECK_SHARE = 0.02
"""Marks holding less than this share of all the ink are specks (dust, JPEG noise): they are left out of the
measurements, and out of the crop unless they lie by the digit, so they neither decide the verdict nor shrink the
digit."""

RESIDUE_SHARE = 0.5
"""Marks whose strongest pixel is under this share of the strongest ink are residue (shade the paper estimate did
not quite follow, a stain, writing showing through the page), left out like specks: every stroke of a digit reaches
close to the full strength of the pen."""

FRAGMENT_REACH = 0.1
"""How near the digit's marks, as a share of its extent, a speck or faint fragment must lie to be cut out with it."""

MIN_MAIN_SHARE = 0.5
"""Least share that the marks that count hold of them and the specks together; when most of the ink is specks,
the picture shows texture or noise, with at most a few blotches in it."""

MIN_INK_PIXELS = 6
"""Least extent, in pixels, of the ink on its longer side: smaller marks are specks, not digits (MNIST's are 20)."""

MAX_PARTS = 6
"""Most separate marks (specks aside) a digit is made of: one stroke, or a few where the pen skipped."""

MAX_PARTS_SPREAD = 2.0
"""Most the ink may extend beyond its largest mark, as a multiple of that mark's extent: a digit's main stroke
spans at least half of it (a 5's separate bar, a 4 drawn in two strokes); blotches strewn over a page do not."""

THICK_STROKE = 0.45
"""Stroke width over extent above which the ink is a blob, not a pen stroke: a disc or square measures about 0.67,
one 1.5 times as long as wide 0.5; a digit's strokes measure 0.05 to 0.35, a stroke twice as long as wide (a short
fat 1) 0.41."""

MAX_STROKE_SHARE = 0.3
"""Widest stroke, as a fraction of the picture's longer side, that a pen draws: the canvas's widest brush is 0.14 of
it; MNIST's strokes are a ninth of the 28 pixels at the median, and under this in all 10,000 test digits. Wider
ink is a filled shape, however long."""

DOT_EXTENT = 0.25
"""A blob spanning less than this fraction of the picture's longer side is a dot (one tap of a 20-pixel brush on
the 280-pixel canvas spans 0.07); a larger one is a filled shape."""

MAX_EDGE_SHARE = 0.35
"""Largest share of the picture's edge pixels that ink may cover. A digit touches the edge where a stroke ends or
runs along it (a quarter of the canvas's edge, for a large digit drawn with the widest brush); ink along more is
the margin around something else (a sheet of paper on a dark desk, a coloured square filling most of the
picture)."""

LINE_STRAIGHTNESS = 0.7
"""Share of its own oriented bounding box that one mark fills, above which it is a straight band (a ruled line
fills 0.85 to 1, a digit's curves well under half)."""

LINE_MAX_TILT_DEGREES = 30.0
"""A straight band within this angle of the horizontal is not a digit; a steeper one can be a 1 and is read."""


class EmptyDrawingError(DigitLabError, ValueError):
    """The image holds no digit to classify."""


class InkFinding(enum.StrEnum):
    """What the ink in a picture looks like, as far as a digit goes."""

    DIGIT_LIKE = "digit-like strokes"
    NO_INK = "no ink"
    SPECK = "a speck"
    DOT = "a dot"
    FILLED_SHAPE = "a filled shape"
    LINE = "a horizontal line"
    EDGES = "marks along the edges"
    SCATTERED = "scattered specks"
    FAINT = "faint marks"


@dataclass(frozen=True)
class InkAnalysis:
    """Measurements of the ink in a picture, and the finding drawn from them.

    contrast: strongest ink against the paper, 0..1. noise: the paper's own spread, in the same units.
    extent_px: the ink's longer side in pixels (specks aside); extent: that over the picture's longer side.
    stroke_width: typical stroke width in pixels; thickness: stroke_width / extent_px.
    parts: separate marks, specks aside. edge_share: share of the picture's edge pixels that are ink.
    straightness: share of its oriented bounding box the ink fills. tilt_degrees: angle of its main axis from the
    horizontal (0..90). Measurements after the one that decided the finding are left at 0.
    """

    finding: InkFinding
    contrast: float
    noise: float = 0.0
    parts: int = 0
    extent_px: int = 0
    extent: float = 0.0
    stroke_width: float = 0.0
    thickness: float = 0.0
    edge_share: float = 0.0
    straightness: float = 0.0
    tilt_degrees: float = 0.0

    @property
    def message(self) -> str:
        """A sentence for the person who drew or uploaded the picture: what was found."""
        return _FINDING_MESSAGES[self.finding].format(analysis=self)


_FINDING_MESSAGES = {
    InkFinding.DIGIT_LIKE: "Found pen strokes that can be read as a digit.",
    InkFinding.NO_INK: "The image has no ink: draw a digit or upload a picture of one.",
    InkFinding.SPECK: "Found only a speck of ink ({analysis.extent_px} px across), too small to be a digit.",
    InkFinding.DOT: "Found a dot, not a digit: one blob about {analysis.extent_px} px across.",
    InkFinding.FILLED_SHAPE: "Found a filled shape, not a pen stroke: the ink is about as thick as it is wide.",
    InkFinding.LINE: "Found a horizontal line, not a digit.",
    InkFinding.EDGES: "Found large marks along the picture's edges, not a digit: crop the picture to the digit and "
                      "the paper around it.",
    InkFinding.SCATTERED: "Found scattered specks, not a digit: no mark stands out from the rest.",
    InkFinding.FAINT: "Found only faint marks (paper texture, stains or noise), not a digit: if you wrote one, use a "
                      "darker pen or more light.",
}


class NotADigitError(EmptyDrawingError):
    """The picture's ink is not a digit; ``finding`` says what it is, ``analysis`` holds the measurements."""

    def __init__(self, analysis: InkAnalysis) -> None:
        super().__init__(analysis.message)
        self.analysis = analysis
        self.finding = analysis.finding


@dataclass(frozen=True)
class PreprocessStages:
    """Every intermediate image, so a dashboard can show how the input was made.

    background: the paper's estimated brightness under the ink, float 0..1, the picture's size (constant for dark
        paper such as the canvas; on light paper it follows shadows and uneven light).
    gray: ink intensity of the whole input measured against ``background``, float 0..1, light ink on dark.
    cropped: ``gray`` cut to the bounding box of the digit's ink (specks and residue outside it left out), all but
        the ink zeroed.
    fitted: ``cropped`` scaled so its longer side is 20 (no padding).
    centred: the final uint8 28x28 image, centre of mass at (14, 14).
    ink: the measurements that found the ink digit-like.
    """

    background: np.ndarray
    gray: np.ndarray
    cropped: np.ndarray
    fitted: np.ndarray
    centred: np.ndarray
    ink: InkAnalysis


def preprocess_drawing(image: PictureInput) -> np.ndarray:
    """Return the MNIST-style uint8 28x28 version of ``image`` (see module doc).

    Raises EmptyDrawingError (NotADigitError, saying what was found) when the image holds no digit.
    """
    return preprocess_stages(image).centred


def preprocess_stages(image: PictureInput) -> PreprocessStages:
    """Run the MNIST preprocessing and keep every stage.

    ``image`` is a decoded upload, a PIL image or a numpy array shaped (H, W), (H, W, 1), (H, W, 2) gray+alpha,
    (H, W, 3) RGB or (H, W, 4) RGBA; integer arrays are read on the 0..255 scale (uint16 on 0..65535), float
    arrays on 0..1. Either polarity works: dark ink on light paper is inverted.

    Raises NotADigitError (an EmptyDrawingError) when the ink is not digit-like.
    """
    background, gray, analysis, digit_ink = _read_ink(read_luminance(to_array(image)))
    if analysis.finding is not InkFinding.DIGIT_LIKE:
        raise NotADigitError(analysis)
    cropped = crop_to_ink(gray, digit_ink)
    fitted = fit_to_box(cropped)
    centred = centre_by_mass(fitted)
    return PreprocessStages(background=background, gray=gray, cropped=cropped, fitted=fitted, centred=centred,
                            ink=analysis)


def analyse_ink(image: PictureInput) -> InkAnalysis:
    """Measure the ink of ``image`` (same inputs as preprocess_stages) and say what it looks like, raising nothing
    for a picture without a digit: for reports and benchmarks that count findings."""
    return _read_ink(read_luminance(to_array(image)))[2]


def _read_ink(luminance: np.ndarray) -> tuple[np.ndarray, np.ndarray, InkAnalysis, np.ndarray]:
    """Measure the ink against its paper and analyse it: (background, gray, analysis, the digit's ink), where gray
    is the ink's contrast scaled so the strongest ink is 1.

    The paper's level is read where the paper likely shows (see _paper_views), and whether the ink is lighter or
    darker than the paper two ways (see likely_polarities). The readings are analysed in turn and the first that
    finds a digit is kept; if none does, the first reading's finding is reported, unless it found no ink at all and
    another found something.
    """
    readings = []
    for picture, paper, padded in _paper_views(luminance):
        for light_ink in likely_polarities(picture, paper):
            background, signed_ink, noise = measure_against_paper(picture, paper, light_ink, padded)
            analysis, digit_ink = _analyse(signed_ink, noise)
            gray = np.clip(signed_ink / max(analysis.contrast, MIN_CONTRAST), 0.0, 1.0).astype(np.float32)
            reading = (background, gray, analysis, digit_ink) if padded is None else \
                (padded.unpad(background), padded.unpad(gray), analysis, padded.unpad(digit_ink))
            if analysis.finding is InkFinding.DIGIT_LIKE:
                return reading
            readings.append(reading)
    return next((reading for reading in readings if reading[2].finding is not InkFinding.NO_INK), readings[0])


def _paper_views(luminance: np.ndarray) -> Iterator[tuple[np.ndarray, float, PaddedPicture | None]]:
    """(picture, the paper's level, its margin) to read, likeliest first: the picture with the level most of it
    shows, then, only when that found no digit, the picture given the margin of paper its corners show (a digit
    that fills its picture; see ``pad_with_paper``)."""
    yield luminance, float(np.median(luminance)), None
    padded = pad_with_paper(luminance)
    yield padded.luminance, padded.paper, padded


def _analyse(signed_ink: np.ndarray, noise: np.ndarray | np.float32) -> tuple[InkAnalysis, np.ndarray]:
    """Measure the ink and decide what it is; for a digit, also return the mask of its ink: the marks that count
    (specks and residue left out) and whatever ink lies within their bounding box.

    Only ink that stands out of the paper's noise counts (see ``ink_mask``). The checks run from the plainest finding
    to the subtlest, and the first that applies is the finding.
    """
    nothing = np.zeros(signed_ink.shape, dtype=bool)
    if float(signed_ink.max()) < MIN_CONTRAST:
        return InkAnalysis(InkFinding.NO_INK, contrast=max(float(signed_ink.max()), 0.0)), nothing
    contrast, signal_to_noise, is_ink = ink_mask(signed_ink, noise)
    noise_level = float(np.median(noise))
    # scipy is unannotated: pyright takes what ndimage.label returns for an int, not (labels, count)
    labels, _ = cast(tuple[np.ndarray, int], ndimage.label(is_ink, structure=np.ones((3, 3))))
    areas = np.bincount(labels.ravel())[1:]
    strongest = np.zeros(areas.size + 1, dtype=np.float32)
    np.maximum.at(strongest, labels[is_ink], signed_ink[is_ink])
    strongest = strongest[1:]
    specks = areas < SPECK_SHARE * areas.sum()
    kept = np.flatnonzero(~specks & (strongest >= RESIDUE_SHARE * contrast)) + 1
    main_ink = np.isin(labels, kept)
    measured = {"contrast": contrast, "noise": noise_level, "parts": int(kept.size)}
    if max(signed_ink.shape) < MIN_INK_PIXELS:  # a picture of a few pixels: whatever is in it is a speck
        return InkAnalysis(InkFinding.SPECK, extent_px=_longer_side(is_ink), **measured), nothing
    if contrast < FAINT_CONTRAST or signal_to_noise < MIN_SIGNAL_TO_NOISE:
        return InkAnalysis(InkFinding.FAINT, **measured), nothing
    if _longer_side(is_ink) < MIN_INK_PIXELS:
        return InkAnalysis(InkFinding.SPECK, extent_px=_longer_side(is_ink), **measured), nothing
    if not kept.size or kept.size > MAX_PARTS:
        return InkAnalysis(InkFinding.SCATTERED, **measured), nothing
    if np.count_nonzero(main_ink) < MIN_MAIN_SHARE * (np.count_nonzero(main_ink) + areas[specks].sum()):
        return InkAnalysis(InkFinding.FAINT, **measured), nothing
    analysis = _judge_shape(main_ink, labels, kept, measured)
    if analysis.finding is not InkFinding.DIGIT_LIKE:
        return analysis, nothing
    return analysis, _digit_ink(is_ink, labels, kept, analysis.extent_px)


def _digit_ink(is_ink: np.ndarray, labels: np.ndarray, kept: np.ndarray, extent_px: int) -> np.ndarray:
    """The ink the digit is cut out with: the box around the marks that count and any specks or faint fragments
    within FRAGMENT_REACH of it (MNIST's thin strokes break into faint pieces a pixel or two apart), and all the
    ink inside that box."""
    boxes = ndimage.find_objects(labels)
    top, left = min(boxes[part - 1][0].start for part in kept), min(boxes[part - 1][1].start for part in kept)
    bottom, right = max(boxes[part - 1][0].stop for part in kept), max(boxes[part - 1][1].stop for part in kept)
    reach = max(1, round(FRAGMENT_REACH * extent_px))
    for rows, cols in boxes:
        if rows.start <= bottom + reach and rows.stop >= top - reach and cols.start <= right + reach \
                and cols.stop >= left - reach:
            top, left = min(top, rows.start), min(left, cols.start)
            bottom, right = max(bottom, rows.stop), max(right, cols.stop)
    digit = np.zeros_like(is_ink)
    digit[top:bottom, left:right] = is_ink[top:bottom, left:right]
    return digit


def _judge_shape(main_ink: np.ndarray, labels: np.ndarray, kept: np.ndarray, measured: dict) -> InkAnalysis:
    """Measure the shape of the ink that counts (the marks ``kept`` of ``labels``) and decide whether it is a
    pen-drawn digit."""
    picture_side = max(main_ink.shape)
    extent_px = _longer_side(main_ink)
    largest_part_px = max(_longer_side(labels == part) for part in kept)
    rows, cols = np.flatnonzero(main_ink.any(axis=1)), np.flatnonzero(main_ink.any(axis=0))
    stroke = stroke_width(main_ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    edge = np.concatenate([main_ink[0], main_ink[-1], main_ink[1:-1, 0], main_ink[1:-1, -1]])
    straightness, tilt = _straightness_and_tilt(main_ink)
    measured = measured | {
        "extent_px": extent_px, "extent": extent_px / picture_side, "stroke_width": stroke,
        "thickness": stroke / extent_px, "edge_share": float(edge.mean()), "straightness": straightness,
        "tilt_degrees": tilt,
    }
    if extent_px < MIN_INK_PIXELS:
        finding = InkFinding.SPECK
    elif extent_px > MAX_PARTS_SPREAD * largest_part_px:
        finding = InkFinding.SCATTERED
    elif stroke / extent_px > THICK_STROKE or stroke > MAX_STROKE_SHARE * picture_side:
        finding = InkFinding.DOT if measured["extent"] < DOT_EXTENT else InkFinding.FILLED_SHAPE
    elif measured["edge_share"] > MAX_EDGE_SHARE:
        finding = InkFinding.EDGES
    elif measured["parts"] == 1 and straightness > LINE_STRAIGHTNESS and tilt < LINE_MAX_TILT_DEGREES:
        finding = InkFinding.LINE
    else:
        finding = InkFinding.DIGIT_LIKE
    return InkAnalysis(finding, **measured)


def _longer_side(mask: np.ndarray) -> int:
    """Longer side, in pixels, of the bounding box of a mask's true pixels (0 if none)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0
    return int(max(rows[-1] - rows[0], cols[-1] - cols[0])) + 1


def _straightness_and_tilt(mask: np.ndarray) -> tuple[float, float]:
    """(share of the mask's oriented bounding box that it fills, angle of its main axis from the horizontal).

    The box is aligned with the mask's principal axes, so a straight band fills most of it at any angle.
    """
    rows, cols = np.nonzero(mask)
    points = np.stack([cols, rows]).astype(np.float64)
    if rows.size < 2:
        return 1.0, 0.0
    _, axes = np.linalg.eigh(np.cov(points))
    along, across = axes[:, 1] @ points, axes[:, 0] @ points
    box = (np.ptp(along) + 1.0) * (np.ptp(across) + 1.0)
    tilt = math.degrees(math.atan2(abs(axes[1, 1]), abs(axes[0, 1])))
    return min(1.0, rows.size / box), tilt


CLOTHING_CONTRAST = 0.08
"""Least difference from the background, on a 0..1 scale, of a pixel that belongs to the garment."""


def clothing_picture(image: PictureInput) -> np.ndarray:
    """A photo of one piece of clothing as Fashion-MNIST's pictures were made (Xiao et al., 2017): background made
    black (a light backdrop is inverted, as the catalogue photos on white were), trimmed to the garment, its longer
    side resized to 28 pixels and centred in a 28×28 gray picture (uint8). An EmptyDrawingError when nothing stands
    out from the background."""
    luminance = read_luminance(to_array(image))
    border = np.concatenate([luminance[0], luminance[-1], luminance[:, 0], luminance[:, -1]])
    background = float(np.median(border))
    if background > 0.5:
        luminance, background = 1.0 - luminance, 1.0 - background
    garment = np.abs(luminance - background) > CLOTHING_CONTRAST
    if not garment.any():
        raise EmptyDrawingError("Nothing in the picture stands out from its background.")
    rows, columns = np.flatnonzero(garment.any(axis=1)), np.flatnonzero(garment.any(axis=0))
    cropped = np.clip(luminance[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1] - background, 0, 1)
    height, width = cropped.shape
    scale = 28 / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = np.asarray(Image.fromarray((cropped * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS))
    picture = np.zeros((28, 28), np.uint8)
    top, left = (28 - resized.shape[0]) // 2, (28 - resized.shape[1]) // 2
    picture[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return picture
