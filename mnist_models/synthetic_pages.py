"""Synthetic photos of handwritten numbers, built from MNIST's test digits, to measure reading a whole number.

Each page shows one number of 3 to 8 digits written left to right with random gaps, sizes, slants (up to 10°) and
baselines, in dark ink on light paper lit unevenly (a brightness gradient), with pixel noise, a few specks and, on
some pages, faint ruled lines; on some pages two neighbouring digits touch or overlap slightly. ``blank_page`` makes
the same paper with no digit. Everything is deterministic for a seed; only the test split is used, so a model never
reads a digit it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .data import load_mnist

MIN_DIGITS, MAX_DIGITS = 3, 8
"""Digits per number."""

HEIGHT_RANGE = (28, 80)
"""Digit height in pixels: from MNIST's own size to a phone photo's close-up."""

MAX_ROTATION_DEGREES = 10.0
"""Largest slant of a digit either way."""

GAP_RANGE = (0.1, 0.6)
"""Gap between neighbouring digits' ink, as a share of the digit height."""

TOUCHING_SHARE = 0.3
"""Share of pages on which one pair of neighbours touches: their gap is between TOUCHING_GAP_RANGE."""

TOUCHING_GAP_RANGE = (-0.1, 0.0)
"""Gap of a touching pair, as a share of the digit height: flush, or overlapping slightly."""

RULED_SHARE = 0.5
"""Share of pages on ruled paper."""


@dataclass(frozen=True)
class SyntheticPage:
    """A picture (uint8, gray (H, W) or RGB (H, W, 3)), the number written on it ("" on a blank page), each digit's
    box (top, left, bottom, right; bottom and right exclusive) left to right, and whether two neighbours were set
    touching (see TOUCHING_GAP_RANGE; flush boxes may still leave their ink apart)."""

    picture: np.ndarray
    text: str
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    touching: bool = False


def mnist_test_digits() -> tuple[np.ndarray, np.ndarray]:
    """MNIST's test images (uint8 (N, 28, 28)) and labels, the pages' source."""
    images, labels = load_mnist("test")
    return images.numpy(), labels.numpy()


def synthetic_page(seed: int, digits: tuple[np.ndarray, np.ndarray] | None = None) -> SyntheticPage:
    """The page for ``seed``: a number of 3 to 8 MNIST test digits on paper (see module doc). ``digits`` is
    ``mnist_test_digits()``, passed in to skip reloading it for every page."""
    images, labels = digits if digits is not None else mnist_test_digits()
    rng = np.random.default_rng(seed)
    count = int(rng.integers(MIN_DIGITS, MAX_DIGITS + 1))
    chosen = rng.integers(0, len(images), size=count)
    height = int(rng.integers(HEIGHT_RANGE[0], HEIGHT_RANGE[1] + 1))
    glyphs = [_glyph(images[index], height * rng.uniform(0.85, 1.1), rng) for index in chosen]
    gaps = rng.uniform(*GAP_RANGE, size=count - 1) * height
    touching = bool(rng.random() < TOUCHING_SHARE)
    if touching:
        gaps[rng.integers(count - 1)] = rng.uniform(*TOUCHING_GAP_RANGE) * height
    margin = [int(rng.uniform(0.3, 1.0) * height) for _ in range(4)]  # top, right, bottom, left
    lefts = np.concatenate([[0.0], np.cumsum([glyph.shape[1] for glyph in glyphs[:-1]] + gaps)]).round().astype(int)
    drops = (rng.uniform(-0.1, 0.1, size=count) * height).round().astype(int)
    tops = drops - drops.min()
    width = int(max(left + glyph.shape[1] for left, glyph in zip(lefts, glyphs, strict=True)))
    tall = int(max(top + glyph.shape[0] for top, glyph in zip(tops, glyphs, strict=True)))
    ink = np.zeros((tall + margin[0] + margin[2], width + margin[1] + margin[3]), dtype=np.float32)
    boxes = tuple((margin[0] + int(top), margin[3] + int(left), margin[0] + int(top) + glyph.shape[0],
                   margin[3] + int(left) + glyph.shape[1]) for left, top, glyph in
                  zip(lefts, tops, glyphs, strict=True))
    for (top, left, bottom, right), glyph in zip(boxes, glyphs, strict=True):
        np.maximum(ink[top:bottom, left:right], glyph, out=ink[top:bottom, left:right])
    text = "".join(str(int(labels[index])) for index in chosen)
    return SyntheticPage(_on_paper(ink, height, rng), text, boxes, touching)


def blank_page(seed: int) -> SyntheticPage:
    """Paper like ``synthetic_page``'s (gradient, noise, specks, ruled lines on some) with nothing written on it."""
    rng = np.random.default_rng(seed)
    height = int(rng.integers(HEIGHT_RANGE[0], HEIGHT_RANGE[1] + 1))
    shape = (int(height * rng.uniform(1.5, 3.0)), int(height * rng.uniform(3.0, 10.0)))
    return SyntheticPage(_on_paper(np.zeros(shape, dtype=np.float32), height, rng), "")


def _glyph(image: np.ndarray, height: float, rng: np.random.Generator) -> np.ndarray:
    """One MNIST digit as ink 0..1, slanted at random, cut to its ink and scaled to ``height`` pixels."""
    angle = rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES)
    rotated = np.asarray(Image.fromarray(image).rotate(angle, Image.Resampling.BILINEAR, expand=True))
    rows, cols = np.flatnonzero(rotated.max(axis=1) > 0), np.flatnonzero(rotated.max(axis=0) > 0)
    cut = rotated[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = height / cut.shape[0]
    size = (max(1, round(cut.shape[1] * scale)), max(1, round(height)))
    return np.asarray(Image.fromarray(cut).resize(size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def _on_paper(ink: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    """Dark ink on paper lit unevenly, with noise, specks and (on some pages) faint ruled lines, as uint8 gray or RGB
    (a paper tint)."""
    rows, cols = ink.shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    along = (np.cos(angle) * x + np.sin(angle) * y) / max(rows, cols)
    paper = rng.uniform(0.7, 0.95) * (1.0 - rng.uniform(0.0, 0.35) * (along - along.min()))
    marks = np.zeros_like(ink)
    if rng.random() < RULED_SHARE:
        spacing = height * rng.uniform(0.9, 1.4)
        for line in np.arange(rng.uniform(0, spacing), rows, spacing).astype(int):
            marks[line:line + int(rng.integers(1, 3))] = rng.uniform(0.08, 0.25)
    for _ in range(int(rng.integers(0, 6))):
        row, col = int(rng.integers(rows)), int(rng.integers(cols))
        marks[row:row + int(rng.integers(1, 3)), col:col + int(rng.integers(1, 3))] = rng.uniform(0.3, 0.8)
    darkness = rng.uniform(0.55, 0.95)
    picture = paper * (1.0 - np.maximum(darkness * ink, marks))
    picture += rng.normal(0.0, rng.uniform(0.003, 0.03), size=picture.shape)
    gray = np.clip(picture * 255.0, 0, 255).round().astype(np.uint8)
    if rng.random() < 0.5:
        return gray
    tint = rng.uniform(0.9, 1.0, size=3)
    return np.clip(gray[..., None] * tint, 0, 255).round().astype(np.uint8)
