"""Decode an uploaded picture into a small 8-bit gray array, with bounded memory whatever its size.

A digit needs a few hundred pixels, not a 50-megapixel photo, so a picture is brought down to at most
WORKING_SIZE pixels a side while it is decoded: JPEG (and MPO, the phone-camera JPEG variant) is decoded at 1/2,
1/4 or 1/8 scale by the JPEG library itself (``Image.draft``), straight to gray; every other format has to be
decoded at full size, and is then averaged down and converted to gray a strip at a time, so no second full-size
copy ever exists. What may be decoded is stated by two rules:

* no picture of more pixels than Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, 89.5 megapixels
  by default) is decoded, whatever its format;
* a picture that has to be decoded at full size (every format but JPEG) must fit in FULL_DECODE_LIMIT_BYTES as
  Pillow stores it: 4 bytes a pixel for colour, gray+alpha and later animation frames, 2 for 16-bit gray, 1 for
  8-bit gray or palette. An RGBA PNG of 8000x8000 fits; one of 9000x9000 does not.

At most MAX_CONCURRENT_DECODES uploads are decoded at once, on worker threads of their own, so several visitors
uploading together do not multiply the peak.
"""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DigitLabError

WORKING_SIZE = 1024
"""Most pixels on the longest side of a decoded upload (a bigger picture is reduced by a whole factor, so it ends
between half this and this). A digit that fills a tenth of the picture still spans 50 to 100 pixels, more than the
20 it is scaled to, while the array stays small (1 MB at most as 8-bit gray)."""

FULL_DECODE_LIMIT_BYTES = 256 * 2**20
"""Most memory one full-size decode may take (formats without reduced decoding). With the strips, the small result
and its preprocessing, an upload stays within 300 MiB over the process's baseline: an 8000x8000 RGBA PNG (244 MiB
decoded) peaks at +263 MiB (``benchmarks/bench_decode.py``)."""

MAX_CONCURRENT_DECODES = 2
"""Uploads decoded at the same time; further uploads wait their turn instead of adding their own peak. They are
decoded on this many worker threads, always the same ones: the C allocator keeps memory freed by a thread for that
thread's next use, so decoding on every visitor's own thread would let each of them hold on to a full decode."""

ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
"""Pillow formats read from uploads (JPEG includes MPO, which phone cameras write). Other formats are not offered
to strangers: EPS, for one, runs Ghostscript."""

STRIP_PIXELS = 500_000
"""Pixels converted to gray per strip when averaging a full-size decode down: about 20 MB of temporaries at a
time, next to the full-size decode of up to FULL_DECODE_LIMIT_BYTES."""

_ORIENTATION_TAG = 0x0112
_DECODERS = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_DECODES, thread_name_prefix="upload-decoder")


class InvalidImageError(DigitLabError, ValueError):
    """Uploaded bytes are not a usable image."""


@dataclass(frozen=True)
class DecodedUpload:
    """An upload as the preprocessing reads it, and what decoding did to it.

    image: uint8, (H, W) gray or (H, W, 2) gray+alpha, upright, longest side at most WORKING_SIZE.
    frame: index (from 0) of the frame used; frame_count: frames or pages in the file (1 for a still picture).
    original_size: (width, height) of the picture in the file, upright.
    notes: sentences for the person who uploaded it (frame used, reduced size, 16-bit range), empty if none apply.
    """

    image: np.ndarray
    frame: int
    frame_count: int
    original_size: tuple[int, int]
    notes: tuple[str, ...]


def load_uploaded_image(data: bytes, frame: int = 0) -> DecodedUpload:
    """Decode uploaded file bytes (see the module doc for the size rules), using frame ``frame`` of an animation.

    Phone photos are turned upright according to their EXIF orientation. 16-bit pictures are scaled by the range
    their data uses (12-bit data in a 16-bit PNG reaches 4095, not 65535).

    Raises InvalidImageError for empty, unreadable, truncated or oversized data, or a frame the file does not have.
    """
    if not data:
        raise InvalidImageError("The uploaded file is empty.")
    return _DECODERS.submit(_decode, data, frame).result()


def _decode(data: bytes, frame: int) -> DecodedUpload:
    try:
        # The bomb warning (1 to 2 times the limit) is not turned into an error here: the size is checked below,
        # and changing warning filters is not safe while another thread decodes.
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise InvalidImageError(
            "The uploaded file is not a PNG, JPEG, GIF, BMP, WebP or TIFF image that can be read."
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(_too_many_pixels_message(None)) from exc
    except (OSError, SyntaxError, EOFError, ValueError) as exc:
        raise InvalidImageError("The uploaded image is damaged or truncated.") from exc
    with image:
        width, height = image.size
        if Image.MAX_IMAGE_PIXELS is not None and width * height > Image.MAX_IMAGE_PIXELS:
            raise InvalidImageError(_too_many_pixels_message(image.size))
        # MPO's extra frames are the camera's previews or depth maps, not pictures the user chose.
        frame_count = 1 if image.format == "MPO" else getattr(image, "n_frames", 1)
        if not 0 <= frame < frame_count:
            raise InvalidImageError(
                f"The uploaded image has {frame_count} frame(s); frame {frame + 1} does not exist."
            )
        if image.format in ("JPEG", "MPO"):
            image.draft("L", _draft_size(image.size) if max(image.size) > WORKING_SIZE else None)
        else:
            _check_full_decode_fits(image, frame)
        try:
            image.seek(frame)
            image.load()
        except (OSError, SyntaxError, EOFError, ValueError) as exc:
            raise InvalidImageError("The uploaded image is damaged or truncated.") from exc
        notes = []
        factor = math.ceil(max(image.size) / WORKING_SIZE)
        gray = reduce_to_gray(image, factor)
        if gray.dtype == np.uint16:
            # 16-bit gray (I;16) has one band, so getextrema gives one (low, high) pair, not one per band
            _, peak = cast(tuple[float, float], image.getextrema())
            gray, data_bits = _sixteen_to_eight_bits(gray, peak)
            if data_bits < 16:
                notes.append(f"The picture is 16-bit but its values use only {data_bits} bits; they were scaled by "
                             f"that range.")
        orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    upright = _apply_orientation(gray, orientation)
    original = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    if max(original) > WORKING_SIZE:
        notes.append(f"The picture ({original[0]}×{original[1]} pixels) was read at "
                     f"{upright.shape[1]}×{upright.shape[0]}; a digit needs no more.")
    if frame_count > 1:
        notes.append(f"Frame {frame + 1} of {frame_count} is used: the file holds an animation or several pages.")
    return DecodedUpload(image=upright, frame=frame, frame_count=frame_count, original_size=original,
                         notes=tuple(notes))


def _too_many_pixels_message(size: tuple[int, int] | None) -> str:
    limit = f"{Image.MAX_IMAGE_PIXELS / 1e6:.1f}" if Image.MAX_IMAGE_PIXELS else "?"
    claimed = f" ({size[0]}×{size[1]})" if size else ""
    return (f"The uploaded image claims too many pixels{claimed} to be decoded safely; "
            f"pictures up to {limit} megapixels are accepted.")


def _draft_size(size: tuple[int, int]) -> tuple[int, int]:
    """The size to ask the JPEG decoder for: the picture scaled so its longest side is half of WORKING_SIZE.

    Pillow picks the largest 1/2, 1/4 or 1/8 reduction that stays at least this big on both sides, so the decoded
    picture is at most WORKING_SIZE on its longest side (if 1/8 suffices) and nothing is decoded in vain.
    """
    scale = WORKING_SIZE / 2 / max(size)
    return max(1, math.floor(size[0] * scale)), max(1, math.floor(size[1] * scale))


def _stored_bytes_per_pixel(mode: str) -> int:
    """Bytes a pixel takes in Pillow's memory (not in the file): 8-bit single-band modes 1, 16-bit 2, others 4."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _check_full_decode_fits(image: Image.Image, frame: int) -> None:
    """Refuse a picture whose full-size decode would exceed FULL_DECODE_LIMIT_BYTES, before decoding anything."""
    # Pillow composites GIF frames after the first in RGB(A), so a later frame counts 4 bytes a pixel.
    per_pixel = 4 if frame > 0 else _stored_bytes_per_pixel(image.mode)
    needed = image.width * image.height * per_pixel
    if needed > FULL_DECODE_LIMIT_BYTES:
        raise InvalidImageError(
            f"The uploaded {image.format} image ({image.width}×{image.height} pixels) would take "
            f"{needed / 2**20:.0f} MB to decode, more than the {FULL_DECODE_LIMIT_BYTES // 2**20} MB allowed for "
            f"one upload. Save it smaller, or as a JPEG, which is read at reduced size."
        )


def reduce_to_gray(image: Image.Image, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of a loaded PIL image into uint8 gray, or gray+alpha if it has any.

    The picture is converted a strip of rows at a time, so only one strip exists in gray besides the result.
    Blocks at the right and bottom edges may be partial; they are averaged over the pixels they hold. With alpha,
    gray is averaged weighted by alpha, so the colour of fully transparent pixels does not bleed into the ink.
    16-bit gray keeps its 16-bit scale here (uint16), for the caller to map onto 0..255.

    Raises InvalidImageError for 32-bit modes (I, F), whose scale is unknown.
    """
    if image.mode in ("I", "F"):
        raise InvalidImageError(
            f"Pillow mode {image.mode!r} (32-bit) images are not supported; save the picture as an 8- or 16-bit image."
        )
    sixteen_bit = image.mode.startswith("I;16")
    with_alpha = image.has_transparency_data and not sixteen_bit
    target = None if sixteen_bit else ("LA" if with_alpha else "L")
    width, height = image.size
    rows_per_strip = max(1, STRIP_PIXELS // (width * factor)) * factor
    kept_as = np.uint16 if sixteen_bit else np.uint8
    strips = []
    for top in range(0, height, rows_per_strip):
        strip = image.crop((0, top, width, min(height, top + rows_per_strip)))
        if target is not None and strip.mode != target:
            # RGBA -> LA directly; palette and other modes pass through RGBA so transparency is kept.
            strip = strip.convert("RGBA").convert(target) if with_alpha and strip.mode != "RGBA" else \
                strip.convert(target)
        strips.append(np.round(_block_mean(np.asarray(strip), factor, with_alpha)).astype(kept_as))
    return np.concatenate(strips, axis=0)


def _block_mean(pixels: np.ndarray, factor: int, with_alpha: bool) -> np.ndarray:
    """Mean of each factor x factor block of a (H, W) or (H, W, 2) array, as float."""
    if factor == 1:
        return pixels.astype(np.float64)
    starts_rows = np.arange(0, pixels.shape[0], factor)
    starts_cols = np.arange(0, pixels.shape[1], factor)

    def block_sum(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.add.reduceat(values, starts_rows, axis=0), starts_cols, axis=1)

    counts = block_sum(np.ones(pixels.shape[:2], dtype=np.float64))
    if not with_alpha:
        return block_sum(pixels.astype(np.float64)) / counts
    gray, alpha = pixels[..., 0].astype(np.float64), pixels[..., 1].astype(np.float64)
    alpha_sum = block_sum(alpha)
    weighted = block_sum(gray * alpha)
    mean_gray = np.divide(weighted, alpha_sum, out=np.zeros_like(weighted), where=alpha_sum > 0)
    return np.stack([mean_gray, alpha_sum / counts], axis=-1)


def _sixteen_to_eight_bits(gray: np.ndarray, peak: float) -> tuple[np.ndarray, int]:
    """Map 16-bit gray onto 0..255 by the bits its data uses: the smallest 2**bits - 1 that holds ``peak``.

    Cameras and scanners often store 10-, 12- or 14-bit data in 16-bit files; read against 65535 such a picture
    looks black. Returns the uint8 image and the number of bits.
    """
    bits = max(1, int(peak).bit_length())
    return np.round(gray * (255.0 / (2**bits - 1))).astype(np.uint8), bits


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn ``pixels`` (rows, columns[, channels]) upright per the EXIF orientation tag, as ImageOps.exif_transpose
    would (2 mirrored, 3 upside down, 4 flipped, 5 transposed, 6 turned left, 7 transversed, 8 turned right)."""
    transposed = pixels.swapaxes(0, 1)
    upright = {
        2: pixels[:, ::-1],
        3: pixels[::-1, ::-1],
        4: pixels[::-1],
        5: transposed,
        6: transposed[:, ::-1],
        7: transposed[::-1, ::-1],
        8: transposed[::-1],
    }.get(orientation, pixels)
    return np.ascontiguousarray(upright)
