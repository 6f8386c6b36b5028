"""Explanations drawn as small RGB pictures: pure numpy, so each is one image message, not one plotly chart, and
tested without a browser. Every picture is 28×28 (or a grid of them) and is enlarged with ``widgets.enlarge``."""

from __future__ import annotations

import numpy as np

from mnist_models.models.architectures import Reading

POSITIVE = np.array([230, 40, 40], dtype=np.float32)  # evidence for the digit asked about
NEGATIVE = np.array([40, 110, 255], dtype=np.float32)  # evidence against it
DIGIT_BRIGHTNESS = 0.4  # the digit stays visible under the heat without hiding it
SCALE_PERCENTILE = 99.5  # one extreme pixel should not wash out the rest of the map


def _unit_scale(values: np.ndarray) -> float:
    """The magnitude mapped to full colour: a high percentile of |values|, never zero."""
    scale = float(np.percentile(np.abs(values), SCALE_PERCENTILE)) if values.size else 0.0
    return scale if scale > 0 else 1.0


def heat_overlay(digit: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """uint8 RGB: the gray digit dimmed, with red where ``heat`` is positive and blue where it is negative, each as
    strong as the value relative to the map's own range (maps are compared by where they point, not by scale)."""
    base = np.asarray(digit, dtype=np.float32)[..., None] / 255.0 * DIGIT_BRIGHTNESS * 255.0
    strength = np.clip(np.asarray(heat, dtype=np.float32) / _unit_scale(heat), -1.0, 1.0)[..., None]
    colour = np.where(strength >= 0, POSITIVE, NEGATIVE)
    mixed = base * (1 - np.abs(strength)) + colour * np.abs(strength)
    return np.clip(mixed, 0, 255).round().astype(np.uint8)


def diverging(values: np.ndarray) -> np.ndarray:
    """uint8 RGB of a signed array on black: red positive, blue negative (weights, an adversarial perturbation)."""
    strength = np.clip(np.asarray(values, dtype=np.float32) / _unit_scale(values), -1.0, 1.0)[..., None]
    colour = np.where(strength >= 0, POSITIVE, NEGATIVE)
    return (colour * np.abs(strength)).round().astype(np.uint8)


def map_grid(maps: np.ndarray, columns: int = 8, gap: int = 1) -> np.ndarray:
    """uint8 gray grid of (channels, H, W) feature maps, each scaled to its own range so a weak channel still shows
    its pattern; a gray gap separates the maps."""
    maps = np.asarray(maps, dtype=np.float32)
    count, height, width = maps.shape
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), 64, dtype=np.uint8)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    scaled = np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0)
    for position, picture in enumerate(scaled):
        top, left = (position // columns) * (height + gap), (position % columns) * (width + gap)
        grid[top:top + height, left:left + width] = (picture * 255).round().astype(np.uint8)
    return grid


def steps_read(digit: np.ndarray, reading: Reading, steps: int) -> np.ndarray:
    """uint8 RGB of the digit with the pixels of the first ``steps`` steps (rows, or feature columns) as read and the
    rest dimmed, a green line along the last pixels read."""
    picture = np.repeat(np.asarray(digit, dtype=np.uint8)[..., None], 3, axis=2).copy()
    view = picture if reading.unit == "row" else picture.transpose(1, 0, 2)  # columns read as rows of the transpose
    read = min(steps * reading.pixels_per_step, view.shape[0])
    view[read:] = (view[read:] * 0.25).astype(np.uint8)
    if read > 0:
        view[read - 1] = np.maximum(view[read - 1], np.array([0, 160, 0], dtype=np.uint8))
    return picture


def magnified(picture: np.ndarray, width: int) -> np.ndarray:
    """``picture`` enlarged by the whole factor that brings it closest to ``width`` px wide, pixels kept crisp and
    its shape kept (a wide grid of feature maps stays wide)."""
    factor = max(1, round(width / picture.shape[1]))
    return picture.repeat(factor, axis=0).repeat(factor, axis=1)


AGREED = (20, 160, 60)  # a digit every model reads the same
DISPUTED = (235, 120, 0)  # a digit the models read differently


def as_rgb(picture: np.ndarray) -> np.ndarray:
    """uint8 RGB of a gray, gray+alpha, RGB or RGBA picture (uint8 or 0..1 floats), transparency laid on white paper,
    the way a transparent scan looks in a viewer."""
    array = np.asarray(picture)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    colour = array[..., :3] if array.shape[2] >= 3 else np.repeat(array[..., :1], 3, axis=2)
    if array.shape[2] in (2, 4):
        alpha = array[..., -1:].astype(np.float32) / 255
        colour = (colour * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return colour


def boxed_number(picture: np.ndarray, boxes, labels: list[str], disputed: list[bool],
                 max_side: int = 900) -> np.ndarray:
    """uint8 RGB of ``picture`` (scaled down to ``max_side``: a phone photo is 4000 px) with a box around each digit
    and its reading above it, orange where the models disagree. ``boxes`` are in the picture's own pixels."""
    from PIL import Image, ImageDraw, ImageFont  # here: the other pictures need only numpy

    image = Image.fromarray(as_rgb(picture))
    scale = min(1.0, max_side / max(image.size))
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(image)
    line = max(2, round(max(image.size) / 300))
    for box, label, differ in zip(boxes, labels, disputed, strict=True):
        colour = DISPUTED if differ else AGREED
        left, top, right, bottom = (round(value * scale) for value in (box.left, box.top, box.right, box.bottom))
        draw.rectangle((left, top, right - 1, bottom - 1), outline=colour, width=line)
        font = ImageFont.load_default(size=max(12, min(48, round((bottom - top) * 0.4))))
        text_left, text_top, text_right, text_bottom = draw.textbbox((0, 0), label, font=font)
        width, height = text_right - text_left, text_bottom - text_top
        above = top - height - 2 * line >= 0  # the label goes under the box when the digit touches the top
        y = top - height - 2 * line if above else min(bottom, image.height - height - 2 * line)
        draw.rectangle((left, y, left + width + 2 * line, y + height + 2 * line), fill=colour)
        draw.text((left + line - text_left, y + line - text_top), label, fill="white", font=font)
    return np.asarray(image)
