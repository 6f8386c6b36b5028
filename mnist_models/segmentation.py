"""Read a whole handwritten number: cut a picture into its digits, left to right, each made MNIST-style.

The ink is measured against its paper exactly as for one digit (``mnist_models._ink``: shade and uneven light are
followed, either polarity), so the threshold holds across a photo lit from one side. Then:

1. Ruled lines go: rows that are ink nearly all across the page, which no digit is; where a line crossed a stroke,
   the stroke is bridged again.
2. The ink falls into connected marks. Marks whose columns overlap are one digit: the pieces of a broken 0 or 4, or
   of a stroke a line cut.
3. A mark much wider than a digit is tall, or one that a path from top to bottom parts crossing almost no ink, holds
   touching digits: it is cut along the path that crosses the least ink, where both sides come out digit-tall.
4. Marks far shorter than a digit (the bar of a 5, the tail of a 2) join the digit next to them; specks join a
   digit they touch, and are dropped otherwise, as are stray marks.
5. Each digit goes through MNIST's steps, keeping the faint ink around its strokes, as MNIST's digits do.

The thresholds were tuned on synthetic pages (``mnist_models.synthetic_pages``) from seed 100000 on;
benchmarks/bench_reading.py reports on pages from seed 0, never looked at while tuning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
from scipy import ndimage

from ._ink import (
    FAINT_CONTRAST,
    INK_THRESHOLD,
    MIN_SIGNAL_TO_NOISE,
    NOISE_MULTIPLE,
    PictureInput,
    centre_by_mass,
    crop_to_ink,
    fit_to_box,
    ink_mask,
    likely_polarities,
    measure_against_paper,
    read_luminance,
    stroke_width,
    to_array,
)

if TYPE_CHECKING:
    from torch import nn

LINE_LEVEL = 0.5
"""Least ink, as a share of the ink threshold, of the pixels of a ruled line's row (see LINE_SPAN)."""

LINE_SPAN = 0.8
"""Share of a row's pixels that must reach LINE_LEVEL for the row to be a ruled line: a line runs across the page,
while a digit's bar (a 7's, a 5's), even on a picture of that one digit, leaves a margin bare either side."""

LINE_MARGIN = 1
"""Rows either side of a ruled line's that are cleared with it: its anti-aliased edges."""

BRIDGE_ROWS = 3
"""Besides the line's own rows, how far above and below a cleared line a stroke must continue to be bridged."""

SPECK_SIZE = 0.2
"""Marks whose longer side is under this share of the tallest mark's height are specks: dust, noise or the
fragments of a thin stroke. They join a digit whose box they reach, and are dropped otherwise."""

SPECK_REACH = 0.1
"""How near a digit's box, as a share of its height, a speck must lie to be taken into it."""

MIN_DIGIT_PIXELS = 8
"""Least height or width, in pixels, of the ink of a digit: smaller marks are specks, whatever else is there."""

MERGE_OVERLAP = 0.5
"""Marks whose columns overlap by this share of the narrower one's width are pieces of one digit."""

MERGE_WIDTH = 1.0
"""Marks whose columns overlap at all are pieces of one digit too if, together, they are no wider than this share of
the typical digit's height (the two arcs of a 0 the pen did not close): of MNIST's test digits slanted up to 10°,
90% are narrower, while two digits side by side are wider."""

PIECE_HEIGHT = 0.5
"""Marks shorter than this share of the typical digit's height are pieces of a digit (the bar of a 5, the tail of a
2, a stroke cut off where the pen skipped): they join the nearest digit, not stand for one."""

PIECE_REACH = 0.3
"""Farthest a piece may lie from the digit it joins, as a share of the typical digit's height; farther ones are
stray marks, dropped."""

SPLIT_HALF_HEIGHT = 0.75
"""Least height of each side of a cut, as a share of the typical digit's height: touching digits are each about as
tall as the others, while a cut through one wide digit mostly leaves a short side (a 2's tail, a 7's bar)."""

SPLIT_NECK = 1.2
"""Most ink a cut between touching digits crosses, in stroke widths: where two digits meet, about one stroke; through
one wide digit (a 0, 2, 3, 8), two or more."""

SPLIT_WIDTH = 1.3
"""Width, as a share of the typical digit's height, above which a run holds two touching digits if a cut through it
crosses little ink (see SPLIT_NECK). Of MNIST's test digits slanted up to 10°, 97% are narrower than this; two
touching digits mostly wider, but a narrow pair (11, 17) is not, and is read as one digit."""

ALWAYS_SPLIT_WIDTH = 1.7
"""Width, as a share of the typical digit's height, above which a run holds two digits however much ink the cut
crosses."""

CLEAN_CUT = 0.3
"""A cut that crosses less ink than this, in stroke widths, parts two digits however narrow the run (11, 12),
provided both sides are CLEAN_CUT_HEIGHT tall: two marks side by side, or joined by a hair."""

CLEAN_CUT_HEIGHT = 0.85
"""Least height of each side of a clean cut (see CLEAN_CUT), as a share of the typical digit's height: the two arcs
of an unclosed 0 or 6 are rarely both this tall."""

SPLIT_WINDOW = (0.3, 0.7)
"""Where, as shares of the run's width, the cut between two digits is looked for: the column of least ink there."""

FAINT_REACH = 2
"""Pixels around a digit's ink within which fainter ink (above the paper's noise, under the ink threshold) is kept
in its picture: the faint strokes and soft edges of a thin pen, which MNIST's digits keep too (on synthetic pages,
0.2 points more digits read right)."""


@dataclass(frozen=True)
class DigitBox:
    """One digit found in a picture: its box in the picture's pixels (bottom and right exclusive), and the digit
    MNIST-style (28x28 float32 in 0..1, light ink on black, fit in 20x20, centred by mass)."""

    top: int
    left: int
    bottom: int
    right: int
    digit: np.ndarray


def segment_digits(image: PictureInput) -> list[DigitBox]:
    """The digits in ``image`` (the inputs ``preprocess_drawing`` takes), left to right; [] when it holds none.

    Either polarity: the likelier one first (see ``likely_polarities``), the other when the first finds nothing.
    """
    luminance = read_luminance(to_array(image))
    paper = float(np.median(luminance))
    for light_ink in likely_polarities(luminance, paper):
        _, signed_ink, noise = measure_against_paper(luminance, paper, light_ink)
        boxes = _segment(signed_ink, noise)
        if boxes:
            return boxes
    return []


def read_digits(model: nn.Module, boxes: list[DigitBox]) -> tuple[str, list[float]]:
    """The digits ``model`` reads in ``boxes``, in one batched forward pass: (text such as "4075", each digit's top
    softmax probability)."""
    from .inference import predict_proba  # here: preprocess, which imports this module, stays free of torch

    if not boxes:
        return "", []
    probabilities = predict_proba(model, np.stack([box.digit for box in boxes]))
    return "".join(map(str, probabilities.argmax(axis=1))), probabilities.max(axis=1).tolist()


def read_number(model: nn.Module, image: PictureInput) -> tuple[str, list[float]]:
    """The number written in ``image`` as ``model`` reads it: ``read_digits`` of ``segment_digits``; ("", []) when
    the picture holds no digit."""
    return read_digits(model, segment_digits(image))


def _segment(signed_ink: np.ndarray, noise: np.ndarray | np.float32) -> list[DigitBox]:
    """The digits in a picture's ink (``measure_against_paper``'s contrast and spread), left to right."""
    contrast, signal_to_noise, is_ink = ink_mask(signed_ink, noise)
    if contrast < FAINT_CONTRAST or signal_to_noise < MIN_SIGNAL_TO_NOISE:
        return []
    is_ink = _without_ruled_lines(is_ink, signed_ink, INK_THRESHOLD * contrast)
    # scipy is unannotated: pyright misreads what ndimage.label and its morphology return (arrays, and a count)
    labels, _ = cast(tuple[np.ndarray, int], ndimage.label(is_ink, structure=np.ones((3, 3))))
    boxes = [(rows.start, cols.start, rows.stop, cols.stop) for rows, cols in ndimage.find_objects(labels)]
    tallest = max((bottom - top for top, _, bottom, _ in boxes), default=0)
    marks = [index for index, (top, left, bottom, right) in enumerate(boxes)
             if max(bottom - top, right - left) >= max(MIN_DIGIT_PIXELS, SPECK_SIZE * tallest)]
    heights = [boxes[mark][2] - boxes[mark][0] for mark in marks]
    if not heights or max(heights) < MIN_DIGIT_PIXELS:
        return []
    typical = float(np.median([height for height in heights if height >= PIECE_HEIGHT * max(heights)]))
    groups = _merge_overlapping([[mark] for mark in marks], boxes, MERGE_WIDTH * typical)
    heights = [_box_of(group, boxes)[2] - _box_of(group, boxes)[0] for group in groups]
    bodies = [group for group, height in zip(groups, heights, strict=True) if height >= PIECE_HEIGHT * typical]
    digits = [digit for body in bodies for digit in _split(_ink_of(labels, body, boxes), typical)]
    for group, height in zip(groups, heights, strict=True):
        if height < PIECE_HEIGHT * typical:
            _join_nearest(digits, _ink_of(labels, group, boxes), PIECE_REACH * typical)
    for speck in sorted(set(range(len(boxes))) - set(marks)):
        _join_nearest(digits, _ink_of(labels, [speck], boxes), SPECK_REACH * typical)
    gray = np.clip(signed_ink / contrast, 0.0, 1.0).astype(np.float32)
    faint = (signed_ink >= NOISE_MULTIPLE * noise) & ~is_ink
    return [_digit_box(gray, faint, digit) for digit in sorted(digits, key=lambda digit: digit.left)]


def _without_ruled_lines(is_ink: np.ndarray, signed_ink: np.ndarray, threshold: float) -> np.ndarray:
    """The ink with ruled lines cleared (see LINE_SPAN), and bridged again where a stroke crosses a line."""
    line_rows = np.percentile(signed_ink, 100 * (1 - LINE_SPAN), axis=1) >= LINE_LEVEL * threshold
    if not line_rows.any():
        return is_ink
    line_rows = cast(np.ndarray, ndimage.binary_dilation(line_rows, iterations=LINE_MARGIN))  # as in _segment
    cleared = is_ink & ~line_rows[:, None]
    lines, _ = cast(tuple[np.ndarray, int], ndimage.label(line_rows))
    bridge = np.ones((int(np.bincount(lines)[1:].max()) + 2 * BRIDGE_ROWS, 1), dtype=bool)
    bridged = cast(np.ndarray, ndimage.binary_closing(cleared, structure=bridge)) & is_ink & line_rows[:, None]
    return cleared | bridged


def _merge_overlapping(groups: list[list[int]], boxes: list[tuple[int, int, int, int]], digit_width: float
                       ) -> list[list[int]]:
    """Join groups of marks whose columns overlap by MERGE_OVERLAP of the narrower one, or overlap at all and are
    together no wider than ``digit_width``, until none do."""
    merged = True
    while merged:
        merged = False
        for first in range(len(groups)):
            for second in range(first + 1, len(groups)):
                _, left_a, _, right_a = _box_of(groups[first], boxes)
                _, left_b, _, right_b = _box_of(groups[second], boxes)
                overlap = min(right_a, right_b) - max(left_a, left_b)
                if overlap >= MERGE_OVERLAP * min(right_a - left_a, right_b - left_b) or (
                        overlap > 0 and max(right_a, right_b) - min(left_a, left_b) <= digit_width):
                    groups[first] = groups[first] + groups.pop(second)
                    merged = True
                    break
            if merged:
                break
    return groups


def _box_of(group: list[int], boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) around the marks of a group."""
    return (min(boxes[mark][0] for mark in group), min(boxes[mark][1] for mark in group),
            max(boxes[mark][2] for mark in group), max(boxes[mark][3] for mark in group))


@dataclass
class _Ink:
    """One digit's ink while it is gathered: a mask whose top left corner lies at (top, left) in the picture."""

    top: int
    left: int
    mask: np.ndarray

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.top, self.left, self.top + self.mask.shape[0], self.left + self.mask.shape[1]

    def add(self, other: _Ink) -> None:
        """Take ``other``'s ink in too, widening the mask as needed."""
        top, left = min(self.top, other.top), min(self.left, other.left)
        bottom, right = max(self.box[2], other.box[2]), max(self.box[3], other.box[3])
        mask = np.zeros((bottom - top, right - left), dtype=bool)
        for ink in (self, other):
            mask[ink.top - top:ink.box[2] - top, ink.left - left:ink.box[3] - left] |= ink.mask
        self.top, self.left, self.mask = top, left, mask


def _ink_of(labels: np.ndarray, group: list[int], boxes: list[tuple[int, int, int, int]]) -> _Ink:
    """The ink of a group of marks."""
    top, left, bottom, right = _box_of(group, boxes)
    return _Ink(top, left, np.isin(labels[top:bottom, left:right], np.asarray(group) + 1))


def _split(ink: _Ink, typical: float) -> list[_Ink]:
    """The digits in a run of ink: itself, or, where it holds touching digits, the digits on either side of the cut
    between them, each split in turn."""
    path = _cut_between_digits(ink.mask, typical)
    if path is None:
        return [ink]
    left_side = np.arange(ink.mask.shape[1]) < path[:, None]
    return [part for side in (ink.mask & left_side, ink.mask & ~left_side)
            for part in _split(_Ink(ink.top, ink.left, side), typical)]


def _cut_between_digits(mask: np.ndarray, typical: float) -> np.ndarray | None:
    """Where touching digits in ``mask`` part, as the first column of the right digit in each row; None if the mask
    holds one digit (see SPLIT_WIDTH, ALWAYS_SPLIT_WIDTH, SPLIT_NECK, SPLIT_HALF_HEIGHT and CLEAN_CUT)."""
    inked = np.flatnonzero(mask.any(axis=0))
    width = int(inked[-1] - inked[0]) + 1
    low, high = (int(inked[0] + share * width) for share in SPLIT_WINDOW)
    crossed, path = _least_ink_path(mask[:, low:high + 1])
    path += low
    left_side = np.arange(mask.shape[1]) < path[:, None]
    shorter = min(_height(mask & left_side), _height(mask & ~left_side))
    if shorter < SPLIT_HALF_HEIGHT * typical:
        return None
    stroke = stroke_width(mask)
    if width > ALWAYS_SPLIT_WIDTH * typical or (width > SPLIT_WIDTH * typical and crossed < SPLIT_NECK * stroke) or (
            crossed < CLEAN_CUT * stroke and shorter >= CLEAN_CUT_HEIGHT * typical):
        return path
    return None


def _least_ink_path(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """The path from top to bottom through ``mask`` (a column per row, moving at most one column a row) that
    crosses the fewest ink pixels: (how many it crosses, its columns). Where two digits touch, it slips between
    them through the joint; through one digit it must cross at least two strokes."""
    height, width = mask.shape
    # Ties go to the path nearest the middle: a hair of cost per column away from it.
    cost = mask + np.abs(np.arange(width) - (width - 1) / 2) / (width * height)
    total, came_from = cost[0].copy(), np.zeros(mask.shape, dtype=np.int64)
    for row in range(1, height):
        options = np.stack([np.r_[np.inf, total[:-1]], total, np.r_[total[1:], np.inf]])
        came_from[row] = np.argmin(options, axis=0) - 1
        total = cost[row] + options.min(axis=0)
    path = np.empty(height, dtype=np.int64)
    path[-1] = int(np.argmin(total))
    for row in range(height - 1, 0, -1):
        path[row - 1] = path[row] + came_from[row, path[row]]
    return int(mask[np.arange(height), path].sum()), path


def _height(mask: np.ndarray) -> int:
    """Height of a mask's ink in rows (0 if none)."""
    rows = np.flatnonzero(mask.any(axis=1))
    return int(rows[-1] - rows[0]) + 1 if rows.size else 0


def _join_nearest(digits: list[_Ink], ink: _Ink, reach: float) -> None:
    """Add ``ink`` to the digit whose box lies nearest it, if that is within ``reach`` pixels; else drop it."""
    top, left, bottom, right = ink.box

    def distance(digit: _Ink) -> int:
        other_top, other_left, other_bottom, other_right = digit.box
        return max(other_left - right, left - other_right, other_top - bottom, top - other_bottom, 0)

    nearest = min(digits, key=distance, default=None)
    if nearest is not None and distance(nearest) <= reach:
        nearest.add(ink)


def _digit_box(gray: np.ndarray, faint: np.ndarray, ink: _Ink) -> DigitBox:
    """The DigitBox of one digit's ink, with the faint ink next to it (see FAINT_REACH), its box tight around the
    ink."""
    rows, cols = np.flatnonzero(ink.mask.any(axis=1)), np.flatnonzero(ink.mask.any(axis=0))
    top, left = ink.top + int(rows[0]), ink.left + int(cols[0])
    bottom, right = ink.top + int(rows[-1]) + 1, ink.left + int(cols[-1]) + 1
    mask = ink.mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    pixels = mask | (ndimage.binary_dilation(mask, iterations=FAINT_REACH) & faint[top:bottom, left:right])
    digit = centre_by_mass(fit_to_box(crop_to_ink(gray[top:bottom, left:right], pixels))).astype(np.float32)
    return DigitBox(top=top, left=left, bottom=bottom, right=right, digit=digit / 255.0)
