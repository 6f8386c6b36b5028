"""Turn a drawn or uploaded picture of a digit into an MNIST-style 28x28 input.

MNIST digits were size-normalised to fit a 20x20 box (keeping the aspect
ratio, anti-aliased), then placed in a 28x28 field so that their centre of
mass sits at the centre, as a light digit on a black background. A model
trained on MNIST only sees inputs like that, so user drawings and photos go
through the same steps here before they reach a model.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from .errors import DigitLabError

OUTPUT_SIZE = 28
"""Side of the final image, as in MNIST."""

FIT_SIZE = 20
"""Side of the box the digit is scaled to fit, as in MNIST."""

CENTRE = 14.0
"""Where the centre of mass is placed (row and column, as
``scipy.ndimage.center_of_mass`` reports it); MNIST's own digits average
(14.0, 14.0)."""

MIN_CONTRAST = 0.1
"""Least ink-to-background contrast (on a 0..1 scale) that counts as a
drawing; below it an image is only paper texture or compression noise."""

INK_THRESHOLD = 0.2
"""Fraction of the strongest ink below which a pixel is background, so faint
paper noise neither widens the bounding box nor gets scaled into the digit."""

MAX_UPLOAD_PIXELS = 25_000_000
"""Largest upload accepted (width x height): far more than a digit needs and
well below Pillow's own decompression-bomb limit, so memory stays bounded."""

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R 601 weights, the same that Pillow uses for RGB -> L."""


class EmptyDrawingError(DigitLabError, ValueError):
    """The image holds no ink, so there is no digit to classify."""


_EMPTY_MESSAGE = "The image has no ink: draw a digit or upload a picture of one."


class InvalidImageError(DigitLabError, ValueError):
    """Uploaded bytes are not a usable image."""


@dataclass(frozen=True)
class PreprocessStages:
    """Every intermediate image, so a dashboard can show how the input was made.

    gray: ink intensity of the whole input, float 0..1, light ink on dark.
    cropped: ``gray`` cut to the ink's bounding box, background noise zeroed.
    fitted: ``cropped`` scaled so its longer side is 20 (no padding).
    centred: the final uint8 28x28 image, centre of mass at (14, 14).
    """

    gray: np.ndarray
    cropped: np.ndarray
    fitted: np.ndarray
    centred: np.ndarray


def preprocess_drawing(image: np.ndarray | Image.Image) -> np.ndarray:
    """Return the MNIST-style uint8 28x28 version of ``image`` (see module doc).

    Raises EmptyDrawingError when the image has no ink.
    """
    return preprocess_stages(image).centred


def preprocess_stages(image: np.ndarray | Image.Image) -> PreprocessStages:
    """Run the MNIST preprocessing and keep every stage.

    ``image`` is a PIL image or a numpy array shaped (H, W), (H, W, 1),
    (H, W, 2) gray+alpha, (H, W, 3) RGB or (H, W, 4) RGBA; integer arrays are
    read on the 0..255 scale (uint16 on 0..65535), float arrays on 0..1.
    Either polarity works: dark ink on light paper is inverted.
    """
    gray = _ink_intensity(_to_array(image))
    cropped = _crop_to_ink(gray)
    fitted = _fit_to_box(cropped)
    centred = _centre_by_mass(fitted)
    return PreprocessStages(gray=gray, cropped=cropped, fitted=fitted, centred=centred)


def load_uploaded_image(data: bytes) -> np.ndarray:
    """Decode uploaded file bytes into a uint8 (or 16-bit gray) numpy array.

    Returns (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA, upright according
    to the EXIF orientation that phone cameras write. Pillow's
    decompression-bomb protection stays on, and its warning is treated as an
    error too, because uploads come from anyone.

    Raises InvalidImageError for empty, unreadable, truncated or oversized data.
    """
    if not data:
        raise InvalidImageError("The uploaded file is empty.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise InvalidImageError(
                "The uploaded file is not an image that can be read (try PNG or JPEG)."
            ) from exc
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImageError(
                "The uploaded image claims too many pixels to be decoded safely."
            ) from exc
        # Checked before decoding, so an oversized picture never fills memory.
        if image.width * image.height > MAX_UPLOAD_PIXELS:
            raise InvalidImageError(
                f"The uploaded image is {image.width}x{image.height} pixels; "
                f"images up to {MAX_UPLOAD_PIXELS // 1_000_000} megapixels are accepted."
            )
        try:
            image.load()
        except (OSError, SyntaxError, EOFError, ValueError) as exc:
            raise InvalidImageError("The uploaded image is damaged or truncated.") from exc
    return _pil_to_array(ImageOps.exif_transpose(image))


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """Convert a PIL image to gray, RGB or RGBA numpy, keeping transparency."""
    if image.mode.startswith("I;16"):
        return np.array(image, dtype=np.uint16)
    if image.mode in ("I", "F"):
        raise InvalidImageError(
            f"Pillow mode {image.mode!r} (32-bit) images are not supported; "
            "save the picture as an 8- or 16-bit image."
        )
    if image.has_transparency_data:
        return np.array(image.convert("RGBA"))
    return np.array(image.convert("L" if image.mode in ("1", "L") else "RGB"))


def _to_array(image: np.ndarray | Image.Image) -> np.ndarray:
    """Accept a PIL image or a numpy array and return a numpy array."""
    if isinstance(image, Image.Image):
        return _pil_to_array(image)
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


def _ink_intensity(array: np.ndarray) -> np.ndarray:
    """Return ink as light-on-dark float 0..1 with the background at 0.

    Transparent pixels show the background, taken to contrast with the
    opaque (drawn) pixels: the canvas draws white strokes on transparency,
    while a transparent PNG usually holds dark ink. The background level is
    the median of the border, and ink is how far a pixel differs from it on
    the side away from the background, so paper tone and polarity drop out.
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

    if alpha is not None and alpha.min() < 1.0:
        coverage = float(alpha.sum())
        if coverage == 0.0:
            raise EmptyDrawingError(_EMPTY_MESSAGE)
        drawn_brightness = float((luminance * alpha).sum()) / coverage
        backdrop = 0.0 if drawn_brightness >= 0.5 else 1.0
        luminance = luminance * alpha + backdrop * (1.0 - alpha)

    border = np.concatenate(
        [luminance[0], luminance[-1], luminance[1:-1, 0], luminance[1:-1, -1]]
    )
    background = float(np.median(border))
    if background > (float(luminance.min()) + float(luminance.max())) / 2.0:
        ink = background - luminance
    else:
        ink = luminance - background
    ink = np.clip(ink, 0.0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise EmptyDrawingError(_EMPTY_MESSAGE)
    return (ink / peak).astype(np.float32)


def _crop_to_ink(gray: np.ndarray) -> np.ndarray:
    """Cut to the bounding box of the ink and zero the faint noise inside it."""
    is_ink = gray >= INK_THRESHOLD
    rows = np.flatnonzero(is_ink.any(axis=1))
    cols = np.flatnonzero(is_ink.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return np.where(is_ink[box], gray[box], np.float32(0.0))


def _fit_to_box(cropped: np.ndarray) -> np.ndarray:
    """Scale so the longer side is FIT_SIZE, keeping the aspect ratio.

    Shrinking averages areas (BOX), the anti-aliasing that gave MNIST its grey
    edges; enlarging is bilinear. Neither overshoots, so values stay 0..1.
    """
    height, width = cropped.shape
    scale = FIT_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    return np.array(Image.fromarray(cropped).resize(size, resample), dtype=np.float32)


def _centre_by_mass(fitted: np.ndarray) -> np.ndarray:
    """Paste into 28x28 with the centre of mass at CENTRE; scale the peak to 255.

    The shift is rounded to whole pixels so the strokes stay sharp, and
    clamped so no ink is cut off when the mass lies far to one side.
    """
    height, width = fitted.shape
    mass_row, mass_col = ndimage.center_of_mass(fitted)
    top = int(np.clip(round(CENTRE - mass_row), 0, OUTPUT_SIZE - height))
    left = int(np.clip(round(CENTRE - mass_col), 0, OUTPUT_SIZE - width))
    canvas = np.zeros((OUTPUT_SIZE, OUTPUT_SIZE), dtype=np.float32)
    canvas[top : top + height, left : left + width] = fitted
    return np.round(canvas * (255.0 / canvas.max())).astype(np.uint8)
