"""Tests for mnist_models.preprocess: drawings and photos -> MNIST-style 28x28, or what was found instead."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from mnist_models import _ink, load_checkpoint, preprocess, real_input
from mnist_models.data import load_mnist
from mnist_models.inference import predict_proba
from mnist_models.preprocess import (
    EmptyDrawingError,
    InkFinding,
    InvalidImageError,
    NotADigitError,
    analyse_ink,
    preprocess_drawing,
    preprocess_stages,
)
from tests.ink_corpus import NO_DIGIT_KINDS, no_digit_cases, real_digit_cases, uneven_light

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


def test_aspect_ratio_is_kept_for_a_wide_digit() -> None:
    # A flat "2", four times as wide as tall.
    image = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(image).line([(40, 120), (240, 120), (40, 170), (240, 170)], fill=255, width=6)
    stages = preprocess_stages(np.array(image))
    height, width = stages.cropped.shape
    assert stages.fitted.shape == (round(20 * height / width), 20) == (6, 20)
    assert ink_box(stages.centred) == (6, 20)


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
    # The canvas's black paper is one level: nothing to flatten.
    assert stages.background.shape == (CANVAS, CANVAS) and np.ptp(stages.background) == 0
    assert stages.ink.finding is InkFinding.DIGIT_LIKE
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


def canvas_with(draw: str, *args: object, **options: object) -> np.ndarray:
    """A 280x280 opaque black canvas with one white ImageDraw shape on it (``draw`` names the method)."""
    image = Image.new("RGB", (CANVAS, CANVAS), "black")
    getattr(ImageDraw.Draw(image), draw)(*args, fill="white", **options)
    return np.array(image)


def red_square(fraction: float) -> np.ndarray:
    """A red square covering ``fraction`` of the side of a white picture, in its middle."""
    image = Image.new("RGB", (200, 200), "white")
    margin = round(100 * (1 - fraction))
    ImageDraw.Draw(image).rectangle([margin, margin, 199 - margin, 199 - margin], fill=(220, 20, 30))
    return np.array(image)


def single_pixel() -> np.ndarray:
    picture = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    picture[140, 140] = 255
    return picture


def scattered_dots() -> np.ndarray:
    picture = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    for row, col in np.random.default_rng(0).integers(0, CANVAS - 3, size=(40, 2)):
        picture[row:row + 3, col:col + 3] = 255
    return picture


def paper_noise() -> np.ndarray:
    return np.clip(np.random.default_rng(0).normal(0.6, 0.15, (200, 200)), 0, 1)


@pytest.mark.parametrize(
    ("image", "finding", "message"),
    [
        pytest.param(canvas_with("ellipse", [130, 130, 150, 150]), InkFinding.DOT, "a dot, not a digit",
                     id="one tap of a 20 px brush"),
        pytest.param(single_pixel(), InkFinding.SPECK, "speck of ink (1 px across)", id="a single bright pixel"),
        pytest.param(np.array([[0, 255]], dtype=np.uint8), InkFinding.SPECK, "speck", id="a 2-pixel image"),
        pytest.param(red_square(0.5), InkFinding.FILLED_SHAPE, "filled shape, not a pen stroke",
                     id="a red square on white"),
        pytest.param(red_square(0.9), InkFinding.EDGES, "along the picture's edges",
                     id="a red square filling most of the picture"),
        pytest.param(canvas_with("ellipse", [40, 40, 240, 240]), InkFinding.FILLED_SHAPE, "filled shape",
                     id="a filled disc"),
        pytest.param(canvas_with("line", [(40, 140), (240, 150)], width=20), InkFinding.LINE, "horizontal line",
                     id="a horizontal line"),
        pytest.param(scattered_dots(), InkFinding.SCATTERED, "scattered specks", id="scattered specks"),
        pytest.param(paper_noise(), InkFinding.FAINT, "faint marks", id="Gaussian noise"),
        pytest.param(np.full((100, 100), 0.8) - 0.15 * np.eye(100)[::-1], InkFinding.FAINT, "faint marks",
                     id="a faint pencil line (15% darker than the paper)"),
    ],
)
def test_pictures_without_a_digit_are_refused_with_what_was_found(
        image: np.ndarray, finding: InkFinding, message: str) -> None:
    with pytest.raises(NotADigitError, match=re.escape(message)) as caught:
        preprocess_drawing(image)
    assert caught.value.finding is finding
    assert caught.value.analysis.finding is finding
    assert isinstance(caught.value, EmptyDrawingError)
    assert analyse_ink(image).finding is finding


@pytest.mark.parametrize(
    ("points", "width"),
    [
        pytest.param([(140, 40), (140, 240)], 20, id="a vertical stroke"),
        pytest.param([(100, 240), (180, 40)], 20, id="a stroke slanted like a 1"),
        pytest.param([(140, 100), (140, 190)], 40, id="a short 1 with the widest brush"),
        pytest.param([(140, 40), (140, 240)], 8, id="a thin 1 with the narrowest brush"),
    ],
)
def test_a_stroke_that_can_be_a_1_is_read(points: list[tuple[int, int]], width: int) -> None:
    assert preprocess_stages(canvas_with("line", points, width=width)).ink.finding is InkFinding.DIGIT_LIKE


def test_analyse_ink_reports_without_raising(reference: np.ndarray) -> None:
    assert analyse_ink(np.array(draw_four())).finding is InkFinding.DIGIT_LIKE
    assert analyse_ink(np.zeros((280, 280, 4), dtype=np.uint8)).finding is InkFinding.NO_INK


def refused(cases: list[tuple[str, np.ndarray]]) -> list[str]:
    return [name for name, image in cases if analyse_ink(image).finding is not InkFinding.DIGIT_LIKE]


def test_drawn_digits_thin_bold_and_photographed_are_read() -> None:
    cases = real_digit_cases(80, seed=1)
    assert refused(cases) == []


def test_real_digits_thin_small_and_photographed_are_read(mnist_root) -> None:
    mnist_images = load_mnist("test", mnist_root)[0].numpy()
    cases = real_digit_cases(160, seed=0, mnist_images=mnist_images)
    missed = refused(cases)
    assert len(missed) <= 0.01 * len(cases), missed


def test_every_kind_of_picture_without_a_digit_is_refused() -> None:
    cases = list(no_digit_cases(per_kind=6, seed=0))
    assert len(cases) == 6 * len(NO_DIGIT_KINDS)
    accepted = [name for name, image in cases if analyse_ink(image).finding is InkFinding.DIGIT_LIKE]
    assert accepted == []


SHADOWS = {
    "light falling off to one side": lambda rows, cols: 1 - 0.7 * cols,
    "a dark corner": lambda rows, cols: 1 - 0.75 * np.exp(-(rows**2 + cols**2) / (2 * 0.35**2)),
    "a soft shadow across the digit": lambda rows, cols: 1 - 0.55 / (1 + np.exp(-(cols - 0.55) / 0.03)),
    "shade over most of the page": lambda rows, cols: 1 - 0.6 / (1 + np.exp(-((rows + cols) - 0.6) / 0.05)),
}


@pytest.fixture(scope="module")
def seven_on_paper(mnist_root) -> np.ndarray:
    """Reflectance of paper with an MNIST 7 written large on it (480x480, paper 0.85, ink 0.15)."""
    images, labels = load_mnist("test", mnist_root)
    seven = images[int(np.flatnonzero(labels.numpy() == 7)[0])].numpy()
    large = np.asarray(Image.fromarray(seven).resize((300, 300), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    ink = np.zeros((480, 480), dtype=np.float32)
    ink[90:390, 90:390] = np.clip(large, 0, 1)
    return 0.85 - 0.7 * ink


def photograph(reflectance: np.ndarray, light: np.ndarray, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 0.01, reflectance.shape)
    return np.clip(reflectance * light + noise, 0, 1)


@pytest.mark.parametrize("shadow", SHADOWS)
def test_a_shadow_on_a_photo_does_not_become_ink(seven_on_paper: np.ndarray, shadow: str) -> None:
    rows, cols = np.mgrid[0:480, 0:480] / 480
    light = SHADOWS[shadow](rows, cols)
    clean = preprocess_stages(photograph(seven_on_paper, np.ones_like(light)))
    shaded = preprocess_stages(photograph(seven_on_paper, light))
    # The paper's estimated brightness follows the shade...
    assert np.corrcoef(shaded.background.ravel(), light.ravel())[0, 1] > 0.9
    # ...so the digit is cut out and scaled as without it, and the CNN still reads a 7.
    assert shaded.fitted.shape == clean.fitted.shape
    same, either = (shaded.fitted > 0.3) & (clean.fitted > 0.3), (shaded.fitted > 0.3) | (clean.fitted > 0.3)
    assert same.sum() / either.sum() > 0.85
    probabilities = predict_proba(load_checkpoint("cnn")[0], shaded.centred)[0]
    assert probabilities.argmax() == 7 and probabilities.max() > 0.9


def test_shade_is_followed_in_photos_with_uneven_light_of_every_kind() -> None:
    rng = np.random.default_rng(0)
    for _ in range(6):
        light = uneven_light((300, 300), rng, shadow=0.6)
        page = photograph(np.full((300, 300), 0.85), light)
        page[100:200, 145:150] = 0.1 * light[100:200, 145:150]  # a 1 drawn in the middle
        assert preprocess_stages(page).fitted.shape == (20, 1)


@pytest.mark.parametrize("shadow", SHADOWS)
def test_a_shadow_on_blank_paper_is_not_a_digit(shadow: str) -> None:
    rows, cols = np.mgrid[0:480, 0:480] / 480
    with pytest.raises(NotADigitError):
        preprocess_drawing(photograph(np.full((480, 480), 0.85), SHADOWS[shadow](rows, cols)))


def test_chalk_on_a_board_lit_unevenly_is_read() -> None:
    # Light ink on dark paper, a lamp brightening one corner of the board: the lit corner is not ink.
    rows, cols = np.mgrid[0:300, 0:300] / 300
    board = 0.12 + 0.45 * np.exp(-(rows**2 + cols**2) / (2 * 0.3**2))
    board[60:240, 200:210] = 0.85  # a 1 in chalk
    stages = preprocess_stages(photograph(board, np.ones_like(board)))
    assert stages.fitted.shape == (20, 1)


# Issue 24: digits that fill their picture (close-up photos, tight scans, small scans enlarged) were refused as
# faint marks, because the paper's level was the picture's median, which is ink once ink covers half of it.
FILLING_SOURCES = ("mnist-tight", "mnist-lowres", "uci-canvas", "uci-sizes", "uci-paper")


@pytest.fixture(scope="module")
def mnist_test_digits(mnist_root) -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_mnist("test")
    return images.numpy(), labels.numpy()


@pytest.mark.parametrize("name", FILLING_SOURCES)
def test_digits_that_fill_their_picture_are_read(name: str, mnist_test_digits) -> None:
    source = real_input.mnist_source(name, *mnist_test_digits, count=60, seed=1) if name.startswith("mnist") else \
        {"uci-canvas": real_input.uci_canvas, "uci-sizes": real_input.uci_sizes,
         "uci-paper": real_input.uci_paper}[name](count=60, seed=1)
    refused = [label for picture, label in source.cases if analyse_ink(picture).finding is not InkFinding.DIGIT_LIKE]
    assert len(refused) <= 1, f"{len(refused)} of {len(source)} refused"


def test_a_tight_crop_is_read_as_its_digit_by_the_cnn(mnist_test_digits) -> None:
    images, labels = mnist_test_digits
    network = load_checkpoint("cnn")[0]
    right = sum(int(predict_proba(network, preprocess_drawing(real_input.tight_crop(image))).argmax()) == label
                for image, label in zip(images[:40], labels[:40], strict=True))
    assert right >= 38


@pytest.mark.parametrize("background", [0, 255])
def test_a_filled_square_that_covers_most_of_the_picture_is_still_refused(background: int) -> None:
    picture = np.full((140, 140), background, dtype=np.uint8)
    picture[12:128, 12:128] = 255 - background  # most of the picture: its corners are paper, as a close-up's are
    with pytest.raises(NotADigitError):
        preprocess_drawing(picture)


@pytest.mark.parametrize(("shape", "window"), [((64, 64), 19), ((64, 37), 19), ((28, 28), 9), ((5, 7), 3)])
def test_the_paper_s_windowed_median_counts_only_cells_inside_the_picture_as_nanmedian_does(shape, window):
    values = np.random.default_rng(window).random(shape).astype(np.float32)
    values[values < 0.3] = 0.5  # ties, as flat paper gives
    padded = np.pad(values, window // 2, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (window, window)).reshape(*shape, -1)
    expected = np.nanmedian(windows, axis=-1).astype(np.float32)
    np.testing.assert_array_equal(_ink._median_within_picture(values, window), expected)
