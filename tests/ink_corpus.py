"""Generated pictures with a digit and without one, to measure the ink gate of mnist_models.preprocess.

Shared by tests/test_preprocess.py and benchmarks/bench_no_digit.py. Every generator is deterministic for a seed.
Real digits are deliberately hard for a gate: thin, small, light on dark and dark on light, in photo-like light.
The no-digit pictures are the issue's cases (a tap, a single pixel, a 2-pixel image, a red square, blank paper,
faint blobs) and their relatives.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

CANVAS = 280
"""The Draw page's canvas side."""

Case = tuple[str, np.ndarray]

# Polylines for the ten digits in a unit box (x right, y down), as a person might draw them in one or two strokes.
DIGIT_STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [[(0.5, 0.0), (0.15, 0.2), (0.05, 0.5), (0.15, 0.8), (0.5, 1.0), (0.85, 0.8), (0.95, 0.5), (0.85, 0.2),
         (0.5, 0.0)]],
    1: [[(0.3, 0.2), (0.55, 0.0), (0.55, 1.0)]],
    2: [[(0.1, 0.25), (0.3, 0.02), (0.7, 0.02), (0.9, 0.25), (0.8, 0.5), (0.1, 1.0), (0.95, 1.0)]],
    3: [[(0.1, 0.1), (0.5, 0.0), (0.85, 0.2), (0.5, 0.48), (0.9, 0.7), (0.5, 1.0), (0.1, 0.9)]],
    4: [[(0.55, 0.0), (0.0, 0.65), (1.0, 0.65)], [(0.7, 0.3), (0.7, 1.0)]],
    5: [[(0.9, 0.0), (0.2, 0.0), (0.15, 0.45), (0.6, 0.4), (0.9, 0.65), (0.6, 1.0), (0.1, 0.9)]],
    6: [[(0.8, 0.0), (0.3, 0.35), (0.15, 0.75), (0.4, 1.0), (0.8, 0.85), (0.75, 0.55), (0.4, 0.5), (0.2, 0.7)]],
    7: [[(0.05, 0.0), (0.95, 0.0), (0.4, 1.0)]],
    8: [[(0.5, 0.5), (0.15, 0.25), (0.5, 0.0), (0.85, 0.25), (0.5, 0.5), (0.1, 0.75), (0.5, 1.0), (0.9, 0.75),
         (0.5, 0.5)]],
    9: [[(0.8, 0.3), (0.5, 0.05), (0.2, 0.25), (0.4, 0.5), (0.8, 0.3), (0.75, 1.0)]],
}


def drawn_digit(digit: int, rng: np.random.Generator, brush: int, size: int | None = None,
                canvas: int = CANVAS) -> np.ndarray:
    """A digit drawn like on the canvas: white strokes of ``brush`` pixels on a transparent RGBA square, its
    points jittered, ``size`` pixels tall (random if None), narrower than tall, somewhere on the canvas."""
    size = size or int(rng.integers(60, 241))
    width = int(size * rng.uniform(0.5, 0.8))
    left = int(rng.integers(0, canvas - width + 1))
    top = int(rng.integers(0, canvas - size + 1))
    image = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for stroke in DIGIT_STROKES[digit]:
        points = [(left + np.clip(x + rng.normal(0, 0.04), 0, 1) * width,
                   top + np.clip(y + rng.normal(0, 0.04), 0, 1) * size) for x, y in stroke]
        draw.line(points, fill=(255, 255, 255, 255), width=brush, joint="curve")
    return np.array(image)


def mnist_small_on_canvas(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit (28x28, light on dark) scaled to 16-40 pixels and placed anywhere on a 280 to 560 canvas."""
    canvas = int(rng.choice([CANVAS, 400, 560]))
    side = int(rng.integers(16, 41))
    small = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR))
    picture = np.zeros((canvas, canvas), dtype=np.uint8)
    top, left = (int(value) for value in rng.integers(0, canvas - side, size=2))
    picture[top:top + side, left:left + side] = small
    return picture


def mnist_thinned(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit enlarged eightfold on the canvas, then eroded so its strokes are a few pixels wide."""
    big = np.asarray(Image.fromarray(digit).resize((224, 224), Image.Resampling.BILINEAR))
    thin = ndimage.grey_erosion(big, size=int(rng.integers(5, 10)))
    picture = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    top, left = (int(value) for value in rng.integers(0, CANVAS - 224, size=2))
    picture[top:top + 224, left:left + 224] = thin
    return picture


def uneven_light(shape: tuple[int, int], rng: np.random.Generator, shadow: float) -> np.ndarray:
    """Light over a page, 1 at its brightest, dimmed by up to ``shadow`` (0..1) in one of three ways: falling off
    to one side, a dark corner, or a soft-edged shadow across the page."""
    height, width = shape
    rows, cols = np.mgrid[0:height, 0:width] / max(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    along = np.cos(angle) * cols + np.sin(angle) * rows
    along = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    kind = rng.integers(3)
    if kind == 0:
        darkness = along
    elif kind == 1:
        corner_row, corner_col = rng.integers(2, size=2) * np.array([rows.max(), cols.max()])
        darkness = np.exp(-((rows - corner_row) ** 2 + (cols - corner_col) ** 2) / (2 * rng.uniform(0.2, 0.4) ** 2))
    else:
        darkness = 1.0 / (1.0 + np.exp(-(along - rng.uniform(0.3, 0.7)) / rng.uniform(0.02, 0.08)))
    return 1.0 - shadow * darkness


def paper_photo(ink_map: np.ndarray, rng: np.random.Generator, ink_level: float | None = None,
                shadow: float = 0.0, noise: float | None = None, jpeg: bool = True) -> np.ndarray:
    """Render ``ink_map`` (float 0..1, 1 = ink) as dark ink on light paper under uneven light (see uneven_light),
    with sensor noise, as an RGB photo, JPEG-compressed unless ``jpeg`` is false."""
    paper = rng.uniform(0.7, 0.92)
    ink_level = rng.uniform(0.05, 0.35) if ink_level is None else ink_level
    noise = rng.uniform(0.005, 0.025) if noise is None else noise
    light = uneven_light(ink_map.shape, rng, shadow)
    reflectance = paper - (paper - ink_level) * ink_map
    gray = np.clip(reflectance * light + rng.normal(0, noise, ink_map.shape), 0, 1)
    tint = np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 1.0)])
    rgb = (np.clip(gray[..., None] * tint, 0, 1) * 255).astype(np.uint8)
    if not jpeg:
        return rgb
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(rng.integers(60, 95)))
    return np.array(Image.open(buffer))


def mnist_photo(digit: np.ndarray, rng: np.random.Generator, shadow: float | None = None) -> np.ndarray:
    """An MNIST digit enlarged to 80-300 pixels, blurred like a pen line, photographed dark on light paper."""
    picture = int(rng.integers(300, 641))
    side = int(rng.integers(80, min(300, picture) + 1))
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    ink = np.zeros((picture, picture), dtype=np.float32)
    top, left = (int(value) for value in rng.integers(0, picture - side + 1, size=2))
    ink[top:top + side, left:left + side] = np.clip(big, 0, 1)
    return paper_photo(ink, rng, shadow=rng.uniform(0.0, 0.6) if shadow is None else shadow)


def real_digit_cases(count: int, seed: int = 0, mnist_images: np.ndarray | None = None) -> list[Case]:
    """``count`` pictures of real digits, in equal shares of eight kinds (four drawn, four from ``mnist_images``,
    the MNIST test digits; without them, of the four drawn kinds only). Names say the kind and the number."""
    rng = np.random.default_rng(seed)
    kinds: list[tuple[str, Callable[[int], np.ndarray]]] = [
        ("drawn with an 8 px brush", lambda i: drawn_digit(i % 10, rng, brush=8)),
        ("drawn with a 20 px brush", lambda i: drawn_digit(i % 10, rng, brush=20, size=int(rng.integers(120, 241)))),
        ("drawn with a 40 px brush", lambda i: drawn_digit(i % 10, rng, brush=40, size=int(rng.integers(180, 261)))),
        ("drawn thin, photographed", lambda i: paper_photo(drawn_digit(i % 10, rng, brush=int(rng.integers(3, 9)),
                                                                       canvas=400)[..., 3] / 255.0, rng,
                                                        shadow=rng.uniform(0.0, 0.6))),
    ]
    if mnist_images is not None:
        kinds += [
            ("MNIST as is", lambda i: mnist_images[i]),
            ("MNIST small on a large canvas", lambda i: mnist_small_on_canvas(mnist_images[i], rng)),
            ("MNIST thinned by erosion", lambda i: mnist_thinned(mnist_images[i], rng)),
            ("MNIST photographed on paper", lambda i: mnist_photo(mnist_images[i], rng)),
        ]
    picks = rng.permutation(len(mnist_images) if mnist_images is not None else count)
    return [(f"{kinds[n % len(kinds)][0]} #{n}", kinds[n % len(kinds)][1](int(picks[n % len(picks)])))
            for n in range(count)]


def _canvas(opaque: bool = True) -> Image.Image:
    return Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 255 if opaque else 0))


def tap(rng: np.random.Generator) -> np.ndarray:
    """One tap of the canvas pen: a round dot of the brush's size (8 to 40 pixels)."""
    image = _canvas(opaque=bool(rng.integers(2)))
    brush = int(rng.integers(8, 41))
    x, y = (int(value) for value in rng.integers(brush, CANVAS - brush, size=2))
    ImageDraw.Draw(image).ellipse([x - brush / 2, y - brush / 2, x + brush / 2, y + brush / 2], fill="white")
    return np.array(image)


def single_pixel(rng: np.random.Generator) -> np.ndarray:
    picture = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    picture[tuple(rng.integers(0, CANVAS, size=2))] = 255
    return picture


def two_pixels(rng: np.random.Generator) -> np.ndarray:
    """A 2-pixel image, one pixel dark and one light, either way round and either orientation."""
    pair = np.array([[0, 255]], dtype=np.uint8)[:, :: 1 if rng.integers(2) else -1]
    return pair if rng.integers(2) else pair.T


def red_square(rng: np.random.Generator) -> np.ndarray:
    """A red square on white or black, filling a third to nine tenths of the picture."""
    side = int(rng.integers(40, 400))
    square = int(side * rng.uniform(0.33, 0.9))
    image = Image.new("RGB", (side, side), "white" if rng.integers(2) else "black")
    corner = int(rng.integers(0, side - square + 1)), int(rng.integers(0, side - square + 1))
    ImageDraw.Draw(image).rectangle([corner, (corner[0] + square, corner[1] + square)], fill=(220, 20, 30))
    return np.array(image)


def blank_paper(rng: np.random.Generator) -> np.ndarray:
    """A photo of blank paper: blotchy texture, light falling off to one side, sensor noise, JPEG."""
    side = int(rng.integers(200, 700))
    blotches = ndimage.gaussian_filter(rng.normal(0, 1, (side, side)), sigma=side / 30)
    texture = 0.04 * blotches / max(float(blotches.std()), 1e-6)
    return paper_photo(np.clip(texture, 0, 1), rng, ink_level=0.2, shadow=rng.uniform(0, 0.6))


def gaussian_noise(rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(28, 400))
    return np.clip(rng.normal(rng.uniform(0.3, 0.7), rng.uniform(0.05, 0.3), (side, side)), 0, 1)


def speck(rng: np.random.Generator) -> np.ndarray:
    """A tiny dark speck (1 to 4 pixels) on a paper photo."""
    ink = np.zeros((int(rng.integers(100, 500)),) * 2, dtype=np.float32)
    size = int(rng.integers(1, 5))
    top, left = (int(value) for value in rng.integers(0, ink.shape[0] - size, size=2))
    ink[top:top + size, left:left + size] = 1.0
    return paper_photo(ink, rng, ink_level=0.1, noise=0.01, jpeg=False)


def horizontal_line(rng: np.random.Generator) -> np.ndarray:
    """A straight stroke on the canvas within 25 degrees of the horizontal, 8 to 30 pixels wide."""
    image = _canvas()
    length = rng.uniform(80, 260)
    angle = np.radians(rng.uniform(-25, 25))
    x0, y0 = rng.uniform(10, CANVAS - 10 - length * np.cos(angle)), rng.uniform(60, CANVAS - 60)
    end = (x0 + length * np.cos(angle), y0 + length * np.sin(angle))
    ImageDraw.Draw(image).line([(x0, y0), end], fill="white", width=int(rng.integers(8, 31)))
    return np.array(image)


def faint_blob(rng: np.random.Generator) -> np.ndarray:
    """A soft round smudge, faint (10 to 40% contrast), light on dark or dark on light."""
    side = int(rng.integers(100, 400))
    rows, cols = np.mgrid[0:side, 0:side]
    centre = rng.uniform(0.2, 0.8, size=2) * side
    radius = rng.uniform(0.03, 0.25) * side
    blob = rng.uniform(0.1, 0.4) * np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * radius**2))
    return (blob if rng.integers(2) else 1.0 - blob).astype(np.float32)


def filled_shape(rng: np.random.Generator) -> np.ndarray:
    """A filled disc or rectangle (aspect up to 1.5) on the canvas: a blob, not a pen stroke."""
    image = _canvas()
    width = rng.uniform(40, 220)
    height = width * rng.uniform(0.67, 1.5)
    left, top = rng.uniform(0, CANVAS - width), rng.uniform(0, CANVAS - min(height, CANVAS))
    box = [left, top, left + width, min(CANVAS, top + height)]
    (ImageDraw.Draw(image).ellipse if rng.integers(2) else ImageDraw.Draw(image).rectangle)(box, fill="white")
    return np.array(image)


def scattered_specks(rng: np.random.Generator) -> np.ndarray:
    """Twenty to eighty small dots strewn over the canvas."""
    picture = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    for _ in range(int(rng.integers(20, 81))):
        top, left = (int(value) for value in rng.integers(0, CANVAS - 4, size=2))
        size = int(rng.integers(1, 5))
        picture[top:top + size, left:left + size] = 255
    return picture


NO_DIGIT_KINDS: dict[str, Callable[[np.random.Generator], np.ndarray]] = {
    "a tap": tap,
    "a single bright pixel": single_pixel,
    "a 2-pixel image": two_pixels,
    "a red square": red_square,
    "blank paper": blank_paper,
    "Gaussian noise": gaussian_noise,
    "a tiny speck": speck,
    "a horizontal line": horizontal_line,
    "a faint blob": faint_blob,
    "a filled shape": filled_shape,
    "scattered specks": scattered_specks,
}


def no_digit_cases(per_kind: int, seed: int = 0) -> Iterator[Case]:
    """``per_kind`` pictures of each kind in NO_DIGIT_KINDS."""
    rng = np.random.default_rng(seed)
    for kind, make in NO_DIGIT_KINDS.items():
        for n in range(per_kind):
            yield f"{kind} #{n}", make(rng)
