"""Tests for mnist_models.segmentation: a whole number in a picture -> its digits, left to right, MNIST-style."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from mnist_models import preprocess, segmentation
from mnist_models.paths import REPO_ROOT
from mnist_models.preprocess import preprocess_drawing
from mnist_models.segmentation import DigitBox, read_digits, read_number, segment_digits
from mnist_models.store.checkpoints import load_checkpoint
from mnist_models.synthetic_pages import blank_page, mnist_test_digits, synthetic_page
from tests.test_preprocess import draw_four

HEIGHT = 56
"""Height, in pixels, of the digits the tests compose."""


@pytest.fixture(scope="module")
def digits(mnist_root) -> tuple[np.ndarray, np.ndarray]:
    return mnist_test_digits()


@pytest.fixture(scope="module")
def cnn() -> torch.nn.Module:
    return load_checkpoint("cnn")[0]


def glyph(digits: tuple[np.ndarray, np.ndarray], label: int, nth: int = 0) -> np.ndarray:
    """The ``nth`` MNIST test digit showing ``label``, cut to its ink and scaled to HEIGHT rows, as ink 0..1."""
    images, labels = digits
    image = images[np.flatnonzero(labels == label)[nth]]
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    cut = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    size = (round(cut.shape[1] * HEIGHT / cut.shape[0]), HEIGHT)
    return np.asarray(Image.fromarray(cut).resize(size, Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def compose(glyphs: list[np.ndarray], gaps: list[int], margin: int = 30) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Ink (float, 1 = ink) with the glyphs left to right, ``gaps`` pixels apart (negative: overlapping), and the
    columns (left, right) each glyph was placed at."""
    width = sum(item.shape[1] for item in glyphs) + sum(gaps) + 2 * margin
    ink = np.zeros((HEIGHT + 2 * margin, width), dtype=np.float32)
    placed, left = [], margin
    for item, gap in zip(glyphs, [*gaps, 0], strict=True):
        region = ink[margin:margin + HEIGHT, left:left + item.shape[1]]
        np.maximum(region, item, out=region)
        placed.append((left, left + item.shape[1]))
        left += item.shape[1] + gap
    return ink, placed


def on_paper(ink: np.ndarray) -> np.ndarray:
    """Dark ink on light paper that darkens towards the right (a shadow), as a uint8 gray photo."""
    paper = np.linspace(0.9, 0.6, ink.shape[1], dtype=np.float32)[None, :]
    return np.round(255 * paper * (1 - 0.85 * ink)).astype(np.uint8)


def test_the_names_are_importable_from_preprocess():
    assert preprocess.segment_digits is segment_digits and preprocess.DigitBox is DigitBox
    assert preprocess.read_number is read_number and preprocess.read_digits is read_digits


def test_known_digits_read_back_in_order_with_boxes_around_them(digits, cnn):
    ink, placed = compose([glyph(digits, label) for label in (4, 0, 7, 5)], gaps=[20, 14, 25])
    picture = on_paper(ink)
    boxes = segment_digits(picture)
    assert len(boxes) == 4
    for box, (left, right) in zip(boxes, placed, strict=True):
        assert abs(box.left - left) <= 2 and abs(box.right - right) <= 2
        assert abs(box.top - 30) <= 2 and abs(box.bottom - 30 - HEIGHT) <= 2
    text, confidences = read_number(cnn, picture)
    assert text == "4075"
    assert len(confidences) == 4 and all(0.5 < confidence <= 1.0 for confidence in confidences)


def test_every_digit_is_mnist_style_and_every_box_lies_in_the_picture(digits):
    ink, _ = compose([glyph(digits, label) for label in (2, 8, 1)], gaps=[18, 18])
    picture = on_paper(ink)
    for box in segment_digits(picture):
        assert 0 <= box.top < box.bottom <= picture.shape[0] and 0 <= box.left < box.right <= picture.shape[1]
        assert box.digit.shape == (28, 28) and box.digit.dtype == np.float32
        assert box.digit.min() >= 0.0 and box.digit.max() == 1.0
        rows, cols = np.flatnonzero(box.digit.any(axis=1)), np.flatnonzero(box.digit.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 20
        row, col = ndimage.center_of_mass(box.digit)
        assert abs(row - 14) <= 1.5 and abs(col - 14) <= 1.5


def test_a_digit_broken_in_two_stays_one_digit(digits, cnn):
    zero = glyph(digits, 0)
    zero[HEIGHT // 2 - 2:HEIGHT // 2 + 2] = 0.0  # a gap straight through it
    ink, placed = compose([glyph(digits, 3), zero, glyph(digits, 9)], gaps=[20, 20])
    assert ndimage.label(ink > 0.2, structure=np.ones((3, 3)))[1] == 4
    boxes = segment_digits(on_paper(ink))
    assert len(boxes) == 3 and boxes[1].bottom - boxes[1].top >= HEIGHT - 2
    assert abs(boxes[1].left - placed[1][0]) <= 2 and abs(boxes[1].right - placed[1][1]) <= 2
    assert read_digits(cnn, boxes)[0] == "309"


def test_a_touching_pair_is_split_in_two(digits, cnn):
    ink, placed = compose([glyph(digits, 6), glyph(digits, 0), glyph(digits, 2)], gaps=[-4, 22])
    assert ndimage.label(ink > 0.2, structure=np.ones((3, 3)))[1] == 2  # 6 and 0 are one mark
    boxes = segment_digits(on_paper(ink))
    assert len(boxes) == 3
    assert boxes[0].left < placed[1][0] < boxes[1].right and boxes[1].left < placed[0][1] < boxes[1].right
    assert read_digits(cnn, boxes)[0] == "602"


def test_specks_and_a_ruled_line_through_the_digits_are_ignored(digits, cnn):
    ink, placed = compose([glyph(digits, label) for label in (1, 3, 5)], gaps=[24, 24])
    ink[30 + HEIGHT // 2:30 + HEIGHT // 2 + 2] = np.maximum(ink[30 + HEIGHT // 2:30 + HEIGHT // 2 + 2], 0.3)
    for row, col in ((8, 12), (100, 60), (10, placed[1][0] + 10), (105, placed[2][1] + 12)):
        ink[row:row + 2, col:col + 2] = 1.0
    picture = on_paper(ink)
    boxes = segment_digits(picture)
    assert len(boxes) == 3
    assert [edge for box in boxes for edge in (box.left, box.right)] == pytest.approx(np.ravel(placed), abs=2)
    assert read_digits(cnn, boxes)[0] == "135"


def test_white_strokes_on_a_transparent_canvas_are_read(digits, cnn):
    ink, _ = compose([glyph(digits, label) for label in (9, 4, 6)], gaps=[16, 16])
    canvas = np.zeros((*ink.shape, 4), dtype=np.uint8)
    canvas[..., :3] = 255
    canvas[..., 3] = np.round(255 * ink)
    assert read_number(cnn, canvas)[0] == "946"
    opaque = np.repeat(np.round(255 * ink).astype(np.uint8)[..., None], 3, axis=2)
    assert read_number(cnn, Image.fromarray(opaque))[0] == "946"


def test_one_large_digit_drawn_on_the_canvas_is_one_digit_as_preprocess_makes_it():
    canvas = np.array(draw_four())  # its bar runs across more than half the canvas: still no ruled line
    boxes = segment_digits(canvas)
    assert len(boxes) == 1
    assert np.abs(boxes[0].digit - preprocess_drawing(canvas) / 255.0).mean() < 0.03


@pytest.mark.parametrize("picture", [
    np.zeros((120, 300), dtype=np.uint8), np.full((120, 300, 3), 255, dtype=np.uint8),
    np.full((120, 300), 0.5, dtype=np.float32), np.zeros((280, 280, 4), dtype=np.uint8),
], ids=["black", "white", "gray", "transparent canvas"])
def test_a_uniform_picture_holds_no_digit(picture, cnn):
    assert segment_digits(picture) == []
    assert read_number(cnn, picture) == ("", [])


def test_blank_paper_with_shade_noise_specks_and_ruled_lines_holds_no_digit():
    assert all(segment_digits(blank_page(seed).picture) == [] for seed in range(100000, 100012))


def test_read_digits_makes_one_batched_pass(digits, cnn):
    ink, _ = compose([glyph(digits, label) for label in (7, 2, 1)], gaps=[20, 20])
    batches = []
    hook = cnn.register_forward_hook(lambda _module, inputs, _output: batches.append(inputs[0].shape[0]))
    try:
        assert read_digits(cnn, segment_digits(on_paper(ink)))[0] == "721"
    finally:
        hook.remove()
    assert batches == [3]
    assert read_digits(cnn, []) == ("", [])


def test_the_page_generator_is_deterministic_and_its_labels_are_the_digits_shown(digits):
    first, again, other = synthetic_page(100003, digits), synthetic_page(100003, digits), synthetic_page(100004, digits)
    assert np.array_equal(first.picture, again.picture) and first.text == again.text
    assert not np.array_equal(first.picture, other.picture) or first.text != other.text
    assert np.array_equal(blank_page(7).picture, blank_page(7).picture) and blank_page(7).text == ""
    images, labels = digits
    threes = (images[labels == 3], labels[labels == 3])
    page = synthetic_page(100003, threes)
    assert page.picture.dtype == np.uint8 and page.picture.ndim in (2, 3)
    assert 3 <= len(page.text) <= 8 and page.text == "3" * len(page.boxes)
    for top, left, bottom, right in page.boxes:
        assert 0 <= top < bottom <= page.picture.shape[0] and 0 <= left < right <= page.picture.shape[1]
    assert [left for _, left, _, _ in page.boxes] == sorted(left for _, left, _, _ in page.boxes)


def test_generated_pages_are_read_by_the_shipped_cnn(digits, cnn):
    pages = [synthetic_page(seed, digits) for seed in range(100100, 100110)]
    read = [read_number(cnn, page.picture)[0] for page in pages]
    assert sum(text == page.text for text, page in zip(read, pages, strict=True)) >= 8
    assert all(len(text) == len(page.text) for text, page in zip(read, pages, strict=True))


def test_the_segmentation_has_no_streamlit_or_plotly_and_preprocess_still_loads_without_torch():
    source = (segmentation.__file__, preprocess.__file__)
    assert not any(word in open(path).read() for path in source for word in ("streamlit", "plotly"))
    # The upload decoder's child process imports preprocess alone (tests/upload_corpus.py), to start in a second.
    script = ("import sys, types\npackage = types.ModuleType('mnist_models')\n"
              f"package.__path__ = [{str(REPO_ROOT / 'mnist_models')!r}]\nsys.modules['mnist_models'] = package\n"
              "import mnist_models.preprocess\nprint('torch' in sys.modules)")
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert child.stdout == "False\n"
