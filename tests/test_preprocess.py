"""Tests for mnist_models.preprocess: drawings and uploads -> MNIST-style 28x28."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from mnist_models import preprocess
from mnist_models.preprocess import (
    EmptyDrawingError,
    InvalidImageError,
    load_uploaded_image,
    preprocess_drawing,
    preprocess_stages,
)

CANVAS = 280
# A "4": asymmetric, so a wrong flip, crop or shift changes the output.
FOUR_STROKES = [
    [(0.55, 0.0), (0.0, 0.65), (1.0, 0.65)],
    [(0.7, 0.3), (0.7, 1.0)],
]


def draw_four(
    left: int = 80,
    top: int = 50,
    size: int = 160,
    ink: tuple[int, ...] = (255, 255, 255, 255),
    paper: tuple[int, ...] = (0, 0, 0, 0),
    mode: str = "RGBA",
) -> Image.Image:
    """Draw the test digit in a size x size box at (left, top) of a 280x280 canvas."""
    image = Image.new(mode, (CANVAS, CANVAS), paper)
    draw = ImageDraw.Draw(image)
    width = max(1, round(size * 0.12))
    for stroke in FOUR_STROKES:
        points = [(left + x * size, top + y * size) for x, y in stroke]
        draw.line(points, fill=ink, width=width, joint="curve")
    return image


def ink_box(image: np.ndarray) -> tuple[int, int]:
    """Height and width of the bounding box of the non-zero pixels."""
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """The canvas case: white ink on a transparent 280x280 RGBA canvas."""
    return preprocess_drawing(np.array(draw_four()))


def test_canvas_drawing_becomes_mnist_like(reference: np.ndarray) -> None:
    assert reference.shape == (28, 28)
    assert reference.dtype == np.uint8
    assert reference.max() == 255
    height, width = ink_box(reference)
    assert max(height, width) in (19, 20)
    assert height <= 20 and width <= 20
    row, col = ndimage.center_of_mass(reference.astype(float))
    assert abs(row - 14.0) <= 0.75 and abs(col - 14.0) <= 0.75


def test_shifted_drawing_gives_the_same_output(reference: np.ndarray) -> None:
    corner = preprocess_drawing(np.array(draw_four(left=12, top=105)))
    assert mean_abs_diff(corner, reference) < 1.0


def test_smaller_drawing_gives_nearly_the_same_output(reference: np.ndarray) -> None:
    small = preprocess_drawing(np.array(draw_four(left=30, top=20, size=80)))
    assert ink_box(small) == ink_box(reference)
    assert mean_abs_diff(small, reference) < 8.0


def test_dark_ink_on_white_paper_is_inverted(reference: np.ndarray) -> None:
    paper = np.array(draw_four(ink=(0, 0, 0), paper=(255, 255, 255), mode="RGB"))
    assert mean_abs_diff(preprocess_drawing(paper), reference) < 1.0


def test_opaque_black_canvas_background_matches_transparent_one(reference: np.ndarray) -> None:
    opaque = np.array(draw_four(paper=(0, 0, 0, 255)))
    assert mean_abs_diff(preprocess_drawing(opaque), reference) < 1.0


def test_dark_ink_on_transparent_png_is_read_against_white(reference: np.ndarray) -> None:
    # Over black, dark ink on transparency would vanish; it must contrast instead.
    dark = np.array(draw_four(ink=(0, 0, 0, 255), paper=(0, 0, 0, 0)))
    assert mean_abs_diff(preprocess_drawing(dark), reference) < 1.0


def test_noisy_photo_of_paper_matches_clean_drawing(reference: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    digit = np.array(draw_four(mode="L", ink=255, paper=0), dtype=float) / 255.0
    # Grey paper (0.8) with texture noise, ink at 0.15: like a phone photo.
    photo = 0.8 - 0.65 * digit + rng.normal(0.0, 0.03, digit.shape)
    photo = np.clip(photo, 0.0, 1.0)
    result = preprocess_drawing(np.stack([photo] * 3, axis=-1))
    assert mean_abs_diff(result, reference) < 6.0
    assert ink_box(result) == ink_box(reference)
    # MNIST backgrounds are exactly black: no paper noise may survive around the digit.
    near_digit = ndimage.binary_dilation(reference > 0)
    assert not result[~near_digit].any()


def test_gray_float_and_pil_inputs_agree(reference: np.ndarray) -> None:
    gray = np.array(draw_four(mode="L", ink=255, paper=0))
    as_float = gray.astype(np.float64) / 255.0
    inputs = {
        "gray uint8": gray,
        "gray float": as_float,
        "gray with channel axis": gray[..., None],
        "gray int64": gray.astype(np.int64),
        "gray uint16": gray.astype(np.uint16) * 257,
        "rgb float": np.stack([as_float] * 3, axis=-1).astype(np.float32),
        "PIL RGBA": draw_four(),
        "PIL L": Image.fromarray(gray),
        "PIL 1-bit": Image.fromarray(gray).convert("1"),
    }
    for name, image in inputs.items():
        result = preprocess_drawing(image)
        assert result.shape == (28, 28) and result.dtype == np.uint8, name
        assert mean_abs_diff(result, reference) < 1.0, name


def test_aspect_ratio_is_kept_for_a_wide_bar() -> None:
    bar = np.zeros((280, 280), dtype=np.uint8)
    bar[130:150, 40:240] = 255
    stages = preprocess_stages(bar)
    assert stages.fitted.shape == (2, 20)
    height, width = ink_box(stages.centred)
    assert width == 20
    assert height <= 3


def test_tall_thin_stroke_keeps_its_height() -> None:
    stroke = np.zeros((100, 100), dtype=np.uint8)
    stroke[10:90, 48:52] = 255
    height, width = ink_box(preprocess_drawing(stroke))
    assert height == 20
    assert width == 1


def test_lopsided_digit_keeps_all_its_ink() -> None:
    # Heavy block on top of a thin stem: centring the mass alone would push
    # the stem off the bottom of the 28x28 canvas.
    image = np.zeros((220, 220), dtype=np.uint8)
    image[10:50, 60:160] = 255
    image[50:210, 109:111] = 255
    result = preprocess_drawing(image)
    height, _ = ink_box(result)
    assert height == 20
    assert result[-1].any()


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(np.zeros((280, 280, 4), dtype=np.uint8), id="all-zero RGBA"),
        pytest.param(
            np.dstack([np.full((280, 280, 3), 255, np.uint8), np.zeros((280, 280), np.uint8)]),
            id="transparent with white rgb",
        ),
        pytest.param(np.full((50, 60, 3), 255, dtype=np.uint8), id="constant white"),
        pytest.param(np.full((50, 60), 128, dtype=np.uint8), id="constant gray"),
        pytest.param(np.full((50, 60), 0.5), id="constant float"),
        pytest.param(
            np.random.default_rng(1).integers(120, 136, (60, 60)).astype(np.uint8),
            id="paper noise",
        ),
        pytest.param(Image.new("RGB", (40, 40), "white"), id="blank PIL"),
        pytest.param(np.zeros((1, 1), dtype=np.uint8), id="single pixel"),
    ],
)
def test_empty_images_are_refused(image: np.ndarray | Image.Image) -> None:
    with pytest.raises(EmptyDrawingError, match="no ink"):
        preprocess_drawing(image)


def test_ink_too_faint_to_see_is_refused() -> None:
    faint = np.zeros((280, 280), dtype=np.uint8)
    faint[100:180, 130:150] = 12  # under 5% contrast
    with pytest.raises(EmptyDrawingError):
        preprocess_drawing(faint)


def test_empty_drawing_error_is_a_value_error() -> None:
    assert issubclass(EmptyDrawingError, ValueError)
    assert issubclass(InvalidImageError, ValueError)


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (np.full((10, 10), 2.0), ValueError, "0..1"),
        (np.full((10, 10), np.nan), ValueError, "finite"),
        (np.full((10, 10), 300, dtype=np.int32), ValueError, "0..255"),
        (np.zeros((10, 10, 5), dtype=np.uint8), ValueError, "shaped"),
        (np.zeros((2, 10, 10, 3), dtype=np.uint8), ValueError, "shaped"),
        (np.zeros((0, 10), dtype=np.uint8), ValueError, "no pixels"),
        ([[0, 255]], TypeError, "numpy array or PIL image"),
    ],
)
def test_malformed_inputs_are_refused(image: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        preprocess_drawing(image)  # type: ignore[arg-type]


def test_stages_have_the_documented_shapes_and_agree(reference: np.ndarray) -> None:
    image = np.array(draw_four())
    stages = preprocess_stages(image)
    assert stages.gray.shape == (CANVAS, CANVAS)
    assert stages.gray.dtype == np.float32
    assert stages.gray.min() == 0.0 and stages.gray.max() == 1.0
    # The crop is the ink's bounding box in the full-size image.
    assert stages.cropped.shape == ink_box(stages.gray >= preprocess.INK_THRESHOLD)
    assert max(stages.fitted.shape) == 20 and min(stages.fitted.shape) <= 20
    assert stages.centred.shape == (28, 28) and stages.centred.dtype == np.uint8
    assert np.array_equal(stages.centred, preprocess_drawing(image))
    assert np.array_equal(stages.centred, reference)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stages.centred = stages.fitted  # type: ignore[misc]


def test_input_is_not_modified() -> None:
    image = np.array(draw_four())
    before = image.copy()
    preprocess_drawing(image)
    assert np.array_equal(image, before)


def png_bytes(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def truncated(data: bytes) -> bytes:
    """The first half of a file, as an interrupted upload leaves it."""
    return data[: len(data) // 2]


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L"])
def test_uploaded_png_round_trips(mode: str) -> None:
    original = draw_four().convert(mode)
    decoded = load_uploaded_image(png_bytes(original))
    assert decoded.dtype == np.uint8
    assert np.array_equal(decoded, np.array(original))


def test_uploaded_palette_png_with_transparency_keeps_alpha() -> None:
    palette = draw_four().convert("P")
    palette.info["transparency"] = 0
    decoded = load_uploaded_image(png_bytes(palette, transparency=0))
    assert decoded.shape == (CANVAS, CANVAS, 4)
    assert decoded[..., 3].min() == 0 and decoded[..., 3].max() == 255


def test_uploaded_scan_preprocesses_like_the_canvas(reference: np.ndarray) -> None:
    scan = draw_four(ink=(20, 20, 20), paper=(240, 240, 235), mode="RGB")
    decoded = load_uploaded_image(png_bytes(scan))
    assert mean_abs_diff(preprocess_drawing(decoded), reference) < 1.0


def test_uploaded_jpeg_photo_preprocesses_like_the_canvas(reference: np.ndarray) -> None:
    photo = draw_four(ink=(30, 30, 40), paper=(230, 225, 215), mode="RGB")
    decoded = load_uploaded_image(png_bytes(photo, fmt="JPEG", quality=75))
    assert mean_abs_diff(preprocess_drawing(decoded), reference) < 6.0


def test_uploaded_16_bit_png_keeps_its_range(reference: np.ndarray) -> None:
    gray16 = np.array(draw_four(mode="L", ink=255, paper=0)).astype(np.uint16) * 257
    decoded = load_uploaded_image(png_bytes(Image.fromarray(gray16)))
    assert decoded.dtype == np.uint16
    assert np.array_equal(decoded, gray16)
    assert mean_abs_diff(preprocess_drawing(decoded), reference) < 1.0


def test_exif_orientation_is_applied() -> None:
    wide = Image.new("L", (20, 10), 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    decoded = load_uploaded_image(png_bytes(wide, fmt="JPEG", exif=exif.tobytes()))
    assert decoded.shape == (20, 10)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"not an image", "not an image"),
        (truncated(png_bytes(draw_four())), "damaged or truncated"),
        (truncated(png_bytes(draw_four(mode="RGB"), fmt="JPEG")), "damaged or truncated"),
    ],
    ids=["empty", "text", "truncated PNG", "truncated JPEG"],
)
def test_bad_uploads_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        load_uploaded_image(data)


@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(10, id="Pillow error (over twice the limit)"),
        pytest.param(6_000, id="Pillow warning (over the limit)"),
    ],
)
def test_decompression_bombs_are_refused(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    data = png_bytes(Image.new("L", (100, 100)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(InvalidImageError, match="too many pixels"):
        load_uploaded_image(data)


def test_pillow_bomb_limit_is_left_on() -> None:
    before = Image.MAX_IMAGE_PIXELS
    load_uploaded_image(png_bytes(draw_four()))
    assert Image.MAX_IMAGE_PIXELS == before
    assert Image.MAX_IMAGE_PIXELS is not None


def test_images_over_25_megapixels_are_refused() -> None:
    # 1-bit and blank, so the file and the test stay small; only the header is read.
    data = png_bytes(Image.new("1", (5001, 5001)))
    assert 5001 * 5001 < Image.MAX_IMAGE_PIXELS  # Pillow alone would accept it
    with pytest.raises(InvalidImageError, match="megapixels"):
        load_uploaded_image(data)
