"""The steps that preprocess (one digit) and segmentation (a whole number) share: reading a picture's pixels,
measuring its ink against the paper it lies on, and MNIST's own steps (crop, fit in 20x20, centre by mass).

See ``mnist_models.preprocess`` for why each step is there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy import ndimage

from .uploads import DecodedUpload, reduce_to_gray

OUTPUT_SIZE = 28
"""Side of the final image, as in MNIST."""

FIT_SIZE = 20
"""Side of the box the digit is scaled to fit, as in MNIST."""

CENTRE = 14.0
"""Where the centre of mass is placed (row and column, as
``scipy.ndimage.center_of_mass`` reports it); MNIST's own digits average
(14.0, 14.0)."""

MIN_CONTRAST = 0.1
"""Least ink-to-paper contrast (on a 0..1 scale, relative to the paper's own brightness on light paper) that counts
as any mark at all; below it the picture has no ink, only compression noise."""

INK_THRESHOLD = 0.2
"""Fraction of the strongest ink below which a pixel is background, so faint
paper noise neither widens the bounding box nor gets scaled into the digit."""

BACKGROUND_GRID = 64
"""Cells on the longer side of the coarse grid on which the paper's brightness is estimated. Shadows and uneven
light change slowly across a picture, so a coarse grid follows them, and it keeps the median filter fast."""

BACKGROUND_WINDOW = 0.3
"""Side of the median window that estimates the paper's brightness, as a fraction of the picture's longer side.
Pen strokes cover less than half of a window this big, so the median sees the paper around them; a shadow or a
dark corner covers more, so it is taken for paper in shade rather than for ink."""

EDGE_PERCENTILE = 2.0
"""Percentiles of the picture's edge taken as its darkest and lightest paper, so a stroke ending at the edge does
not count as paper."""

MAX_SHADE_SLOPE = 20.0
"""Steepest change of the paper's estimated brightness taken for shade, relative to the paper's brightness, per
length of the picture's longer side: light falling to half takes at least a fortieth of the picture. The edge of a
filled shape changes as much within one cell of the grid (a 64th); the flank of a bold digit's dip, half as much."""

CORNER_SHARE = 0.15
"""Side of each corner, as a share of the picture's side, in which the paper is read when the ink fills most of the
picture (see ``pad_with_paper``)."""

MARGIN_SHARE = 0.25
"""Margin of paper given to a picture that the ink fills, as a share of its longer side on each side: the padded
picture is then mostly paper, as a drawing on the canvas is (see ``pad_with_paper``)."""

MIN_PAPER_BRIGHTNESS = 0.05
"""Paper darker than this (on 0..1) is treated as this bright when ink is measured relative to it, so sensor noise
in a black corner is not divided into strong ink."""

NOISE_MULTIPLE = 3.0
"""Contrast under this many times the paper's spread at a pixel is not taken for ink: it is noise."""

MIN_SIGNAL_TO_NOISE = 10.0
"""Least ratio of the strongest ink to the paper's own spread (pixel noise, texture, leftover shade): texture and
noise peak at 3 to 7 times their spread, while pen strokes in the photo-like corpus stand 16 or more times above."""

FAINT_CONTRAST = 0.25
"""Least contrast of ink that is read: pen, pencil and marker darken paper by 40 to 90%; paper texture, stains and
leftover shade by less than 25%. (Between MIN_CONTRAST and this, there are marks, but only faint ones.)"""

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R 601 weights, the same that Pillow uses for RGB -> L."""


PictureInput = np.ndarray | Image.Image | DecodedUpload


def to_array(image: PictureInput) -> np.ndarray:
    """Accept a decoded upload, a PIL image or a numpy array and return a numpy array."""
    if isinstance(image, DecodedUpload):
        return image.image
    if isinstance(image, Image.Image):
        return reduce_to_gray(image, 1)
    if isinstance(image, np.ndarray):
        return image
    raise TypeError(f"Expected a numpy array or PIL image, got {type(image).__name__}.")


def _to_unit_float(array: np.ndarray) -> np.ndarray:
    """Scale pixel values to float32 0..1, refusing values outside the dtype's scale."""
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 255:
            raise ValueError("Integer images must hold values in 0..255 (or be uint16).")
        return array.astype(np.float32) / 255.0
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
            raise ValueError("Float images must hold finite values in 0..1.")
        return array.astype(np.float32)
    raise ValueError(f"Unsupported pixel type {array.dtype}.")


def read_luminance(array: np.ndarray) -> np.ndarray:
    """Brightness of the picture as float32 0..1, transparent pixels showing a backdrop that contrasts with the ink.

    The canvas draws white strokes on transparency, while a transparent PNG usually holds dark ink: the backdrop is
    black under light drawn pixels and white under dark ones. A fully transparent picture is all backdrop: no ink.
    """
    if array.size == 0:
        raise ValueError("The image has no pixels.")
    channels = array.shape[2] if array.ndim == 3 else 0
    if array.ndim == 2:
        luminance, alpha = _to_unit_float(array), None
    elif channels in (1, 2):
        pixels = _to_unit_float(array)
        luminance, alpha = pixels[..., 0], (pixels[..., 1] if channels == 2 else None)
    elif channels in (3, 4):
        pixels = _to_unit_float(array)
        luminance, alpha = pixels[..., :3] @ _LUMA, (pixels[..., 3] if channels == 4 else None)
    else:
        raise ValueError(
            f"Expected an image shaped (H, W) or (H, W, C) with C = 1..4; got {array.shape}."
        )
    if alpha is None or alpha.min() >= 1.0:
        return luminance
    coverage = float(alpha.sum())
    drawn_brightness = float((luminance * alpha).sum()) / coverage if coverage else 1.0
    backdrop = 0.0 if drawn_brightness >= 0.5 else 1.0
    return luminance * alpha + backdrop * (1.0 - alpha)


@dataclass(frozen=True)
class PaddedPicture:
    """A picture given the margin of paper it lacks (see ``pad_with_paper``): ``luminance`` is ``original`` with
    ``margin`` pixels at ``paper``'s level on every side; ``paper`` is the level read in the original's corners,
    ``corners`` their places in the padded picture."""

    original: np.ndarray
    luminance: np.ndarray
    paper: float
    corners: tuple[tuple[slice, slice], ...]
    margin: int

    @property
    def in_margin(self) -> np.ndarray:
        """The margin's mask in the padded picture."""
        return ~np.pad(np.ones(self.original.shape, dtype=bool), self.margin)

    def unpad(self, array: np.ndarray) -> np.ndarray:
        """``array`` (shaped like the padded picture) cut back to the original picture."""
        return array[self.margin:-self.margin, self.margin:-self.margin]


def likely_polarities(luminance: np.ndarray, paper: float) -> tuple[bool, ...]:
    """Whether the ink is lighter than its paper, as one answer or, when the two clues disagree, both in order.

    First clue: the picture's edge shows paper, not ink, so the ink reaches further beyond the edge's range than
    the paper does (this fails when the ink runs along the edge, as a large drawing may). Second clue: most of the
    picture shows paper (``paper`` is its median), so ink lies on the far side of the picture's mid-level from it
    (this fails when shade covers most of a sheet).
    """
    lowest, highest = float(luminance.min()), float(luminance.max())
    edge = np.concatenate([luminance[0], luminance[-1], luminance[1:-1, 0], luminance[1:-1, -1]])
    edge_low, edge_high = np.percentile(edge, [EDGE_PERCENTILE, 100 - EDGE_PERCENTILE])
    by_edge = bool(highest - edge_high > edge_low - lowest)
    by_majority = paper <= (lowest + highest) / 2.0
    return (by_edge,) if by_edge == by_majority else (by_edge, by_majority)


def pad_with_paper(luminance: np.ndarray) -> PaddedPicture:
    """The picture with a margin of its own paper, read in its four corners.

    A close-up photo, a tight scan or a small digit enlarged to fill its picture is mostly ink, so its median is not
    its paper, its strokes run along its edges and look thick for the picture's size. Its corners still show paper
    (strokes touch a digit's bounding box at a few points and seldom in a corner, so at most one corner of four
    holds ink), and with a margin of that paper around it the picture looks as a drawing on the canvas does.
    """
    height, width = luminance.shape
    rows, cols = max(1, round(CORNER_SHARE * height)), max(1, round(CORNER_SHARE * width))
    margin = max(1, round(MARGIN_SHARE * max(height, width)))
    corners = [(top, left) for top in (0, height - rows) for left in (0, width - cols)]
    paper = float(np.median(np.concatenate([luminance[top:top + rows, left:left + cols].ravel()
                                            for top, left in corners])))
    return PaddedPicture(
        original=luminance, luminance=np.pad(luminance, margin, constant_values=np.float32(paper)), paper=paper,
        corners=tuple((slice(margin + top, margin + top + rows), slice(margin + left, margin + left + cols))
                      for top, left in corners), margin=margin)


def measure_against_paper(luminance: np.ndarray, paper: float, light_ink: bool, padded: PaddedPicture | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | np.float32]:
    """Return the paper's brightness, the ink's signed contrast against it (both float32 of the picture's size) and
    the spread of that contrast on bare paper (noise, texture), per pixel or as one value.

    Paper may lie in shade or uneven light, which darkens (or lights) it much as ink would, so its brightness is
    estimated locally, unless most of the picture is exactly one level (``paper``, as on the canvas), when there
    is nothing to follow. Ink on light paper is measured relative to the paper's brightness (a stroke in shade is
    as dark, relative to the paper around it, as one in full light), light ink on dark paper by the difference.
    Contrast is positive for ink, about zero for paper, negative for paper beyond its estimate. Measured relative to
    dim paper, noise grows as the light fades, so the spread is given per pixel there.

    For a picture given a margin of paper (``padded``; ``luminance`` is then its padded picture), whether the paper
    is one level is judged in the picture's corners, shade is followed across a margin that continues the picture's
    edge (shade that reaches the edge goes on beyond it, instead of ending in a pool the margin encloses), the
    margin holds no ink, and the spread is read in the cleanest corner (the others may hold a stroke).
    """
    if padded is None:
        flat = np.count_nonzero(luminance == paper) * 2 > luminance.size
        regions, followed, side = [np.s_[:, :]], luminance, None
    else:
        corners = np.concatenate([luminance[corner].ravel() for corner in padded.corners])
        flat = np.count_nonzero(corners == paper) * 2 > corners.size
        regions, followed = list(padded.corners), np.pad(padded.original, padded.margin, mode="edge")
        side = max(padded.original.shape)
    if flat:
        background = np.full_like(luminance, paper)
    else:
        background = 1.0 - _light_paper_brightness(1.0 - followed, 1.0 - paper, side) if light_ink else \
            _light_paper_brightness(followed, paper, side)
    if padded is not None:
        luminance = np.where(padded.in_margin, background, luminance)
    if light_ink:
        signed_ink = luminance - background
        return background, signed_ink, np.float32(min(_spread(signed_ink[region]) for region in regions))
    darkening = background - luminance
    brightness = np.maximum(background, np.float32(MIN_PAPER_BRIGHTNESS))
    return background, darkening / brightness, \
        np.float32(min(_spread(darkening[region]) for region in regions)) / brightness


def _light_paper_brightness(luminance: np.ndarray, paper: float, side: int | None = None) -> np.ndarray:
    """Estimate light paper's brightness under dark ink (dark paper's is this on the inverted picture): the median
    of a coarse grid over a large window, smoothed back up to the picture's size (see BACKGROUND_GRID and
    BACKGROUND_WINDOW).

    Shade comes from outside the picture, so dark areas that do not reach its edge (dense strokes of a bold digit,
    a filled shape) are not shade: they are filled up to the paper around them. Shade is also soft-edged; a dark
    area whose edge is sharper than MAX_SHADE_SLOPE allows (a filled square reaching the edge) is not shade but
    something on the paper, so then the paper is taken as one level, ``paper``, throughout.

    The grid, the window and the steepest slope are sized by ``side``: the picture's longer side, or for a picture
    given a margin, its own without the margin (shade is as soft, and strokes as wide, as they were).
    """
    height, width = luminance.shape
    sized_by = side or max(height, width)
    factor = max(1, math.ceil(sized_by / BACKGROUND_GRID))
    coarse = np.asarray(Image.fromarray(luminance).reduce(factor))
    window = max(3, round(BACKGROUND_WINDOW * math.ceil(sized_by / factor)) | 1)  # the grid's cells on that side
    median = _median_within_picture(coarse, window)
    estimate = _fill_basins(median)
    steepest_allowed = MAX_SHADE_SLOPE * paper * factor / sized_by
    if _steepest_shade_step(estimate, unfilled=estimate == median) > steepest_allowed:
        return np.full_like(luminance, paper)
    return np.asarray(Image.fromarray(estimate).resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def _median_within_picture(values: np.ndarray, window: int) -> np.ndarray:
    """Median over a window x window square around each cell, counting only cells inside the picture.

    Mirroring the picture at its edges instead would invent paper that is not there: a shadow edge meeting the
    picture's edge at a slant would be mirrored into a wedge of false ink in the corner.

    Cells outside are NaN, which sorts last: the median is read from each sorted window at its own count of cells
    inside. The same values as ``np.nanmedian``, whose masked-array path took 6-7 times as long (40-60 ms a picture).
    """
    padded = np.pad(values, window // 2, constant_values=np.nan)
    windows = np.sort(sliding_window_view(padded, (window, window)).reshape(*values.shape, -1), axis=-1)
    inside = np.count_nonzero(~np.isnan(windows), axis=-1)[..., None]
    lower = np.take_along_axis(windows, (inside - 1) // 2, axis=-1)
    upper = np.take_along_axis(windows, inside // 2, axis=-1)
    return ((lower + upper) / 2)[..., 0].astype(np.float32)


def _steepest_shade_step(estimate: np.ndarray, unfilled: np.ndarray) -> float:
    """Largest brightness change between neighbouring cells that both kept their own estimate.

    A filled basin's rim may be sharp, but it errs on the safe side (paper taken darker than it is only weakens
    the ink), so those steps are not held against the estimate.
    """
    vertical = np.abs(estimate[1:] - estimate[:-1])[unfilled[1:] & unfilled[:-1]]
    horizontal = np.abs(estimate[:, 1:] - estimate[:, :-1])[unfilled[:, 1:] & unfilled[:, :-1]]
    return max((float(steps.max()) for steps in (vertical, horizontal) if steps.size), default=0.0)


def _fill_basins(surface: np.ndarray) -> np.ndarray:
    """Raise each dark basin of ``surface`` that does not reach its border to the level at which it would spill
    over (grey-level hole filling: reconstruction by erosion from the border)."""
    filled = np.full_like(surface, surface.max())
    for edge in (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]):
        filled[edge] = surface[edge]
    while True:
        lowered = np.maximum(ndimage.grey_erosion(filled, size=(3, 3)), surface)
        if np.array_equal(lowered, filled):
            return filled
        filled = lowered


def ink_mask(signed_ink: np.ndarray, noise: np.ndarray | np.float32) -> tuple[float, float, np.ndarray]:
    """(contrast: the strongest ink that stands out of the noise, signal to noise: the strongest ink over the paper's
    spread, the mask of the ink) for ``measure_against_paper``'s contrast and spread.

    Only contrast that stands NOISE_MULTIPLE times above the paper's spread at its pixel counts as ink, so sensor
    noise in dim shade does not add specks or set the scale; ink weaker than INK_THRESHOLD of the strongest is left
    to the paper.
    """
    significant = signed_ink >= NOISE_MULTIPLE * noise
    contrast = float(signed_ink[significant].max()) if significant.any() else 0.0
    signal_to_noise = float(np.max(signed_ink / np.maximum(noise, 1e-6)))
    return contrast, signal_to_noise, significant & (signed_ink >= INK_THRESHOLD * contrast)


def stroke_width(mask: np.ndarray) -> float:
    """Typical width, in pixels, of the strokes in a mask (at least 1)."""
    box = np.pad(mask, 1)  # the mask's edge is not the ink's edge
    # Across a stroke w pixels wide the distance to its edge averages (w + 2) / 4.
    # scipy is unannotated; called with distances only, distance_transform_edt returns just the distance array
    distance = cast(np.ndarray, ndimage.distance_transform_edt(box))
    return max(1.0, 4.0 * float(distance[box].mean()) - 2.0)


def _spread(values: np.ndarray) -> float:
    """Spread of bare paper around its own level (noise, texture, leftover shade), robust to the ink, which covers
    well under half of the pixels it is given: a scaled median absolute deviation."""
    return float(np.median(np.abs(values - np.median(values)))) * 1.4826


def crop_to_ink(gray: np.ndarray, digit_ink: np.ndarray) -> np.ndarray:
    """Cut to the bounding box of the digit's ink and zero everything else inside it."""
    rows = np.flatnonzero(digit_ink.any(axis=1))
    cols = np.flatnonzero(digit_ink.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return np.where(digit_ink[box], gray[box], np.float32(0.0))


def fit_to_box(cropped: np.ndarray) -> np.ndarray:
    """Scale so the longer side is FIT_SIZE, keeping the aspect ratio.

    Shrinking averages areas (BOX), the anti-aliasing that gave MNIST its grey
    edges; enlarging is bilinear. Neither overshoots, so values stay 0..1.
    """
    height, width = cropped.shape
    scale = FIT_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    return np.array(Image.fromarray(cropped).resize(size, resample), dtype=np.float32)


def centre_by_mass(fitted: np.ndarray) -> np.ndarray:
    """Paste into 28x28 with the centre of mass at CENTRE; scale the peak to 255.

    The shift is rounded to whole pixels so the strokes stay sharp, and
    clamped so no ink is cut off when the mass lies far to one side.
    """
    height, width = fitted.shape
    # scipy is unannotated; for one 2-D image without labels center_of_mass returns one (row, column) tuple
    mass_row, mass_col = cast(tuple[float, float], ndimage.center_of_mass(fitted))
    top = int(np.clip(round(CENTRE - mass_row), 0, OUTPUT_SIZE - height))
    left = int(np.clip(round(CENTRE - mass_col), 0, OUTPUT_SIZE - width))
    canvas = np.zeros((OUTPUT_SIZE, OUTPUT_SIZE), dtype=np.float32)
    canvas[top : top + height, left : left + width] = fitted
    return np.round(canvas * (255.0 / canvas.max())).astype(np.uint8)
