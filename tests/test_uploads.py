"""Tests for mnist_models.uploads: decoding uploads of any size with bounded memory, frames, 16-bit data, EXIF."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from mnist_models import uploads
from mnist_models.preprocess import preprocess_drawing
from mnist_models.uploads import (
    ACCEPTED_FORMATS,
    MAX_CONCURRENT_DECODES,
    WORKING_SIZE,
    DecodedUpload,
    InvalidImageError,
    load_uploaded_image,
    reduce_to_gray,
)
from tests.test_preprocess import draw_four, mean_abs_diff
from tests.upload_corpus import enlarged_png, measure_decode_peak, photo_jpeg, transparent_png

MEMORY_BUDGET_MB = 300
"""Most an accepted upload may add to the process's peak memory (issue 9, item 3)."""


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def truncated(data: bytes) -> bytes:
    """The first half of a file, as an interrupted upload leaves it."""
    return data[: len(data) // 2]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """The canvas case: white ink on a transparent 280x280 RGBA canvas."""
    return preprocess_drawing(np.array(draw_four()))


@pytest.mark.parametrize(("mode", "gray_mode"), [("RGBA", "LA"), ("RGB", "L"), ("L", "L")])
def test_uploads_come_back_as_8_bit_gray_keeping_transparency(mode: str, gray_mode: str) -> None:
    original = draw_four().convert(mode)
    decoded = load_uploaded_image(encoded(original))
    assert decoded.image.dtype == np.uint8
    assert np.array_equal(decoded.image, np.array(original.convert(gray_mode)))
    assert (decoded.frame, decoded.frame_count, decoded.original_size, decoded.notes) == (0, 1, (280, 280), ())


def test_palette_png_with_transparency_keeps_alpha() -> None:
    palette = draw_four().convert("P")
    decoded = load_uploaded_image(encoded(palette, transparency=0))
    assert decoded.image.shape == (280, 280, 2)
    assert decoded.image[..., 1].min() == 0 and decoded.image[..., 1].max() == 255


def test_a_decoded_upload_goes_straight_into_preprocessing(reference: np.ndarray) -> None:
    decoded = load_uploaded_image(encoded(draw_four()))
    assert np.array_equal(preprocess_drawing(decoded), reference)


def test_uploaded_scan_preprocesses_like_the_canvas(reference: np.ndarray) -> None:
    scan = draw_four(ink=(20, 20, 20), paper=(240, 240, 235), mode="RGB")
    assert mean_abs_diff(preprocess_drawing(load_uploaded_image(encoded(scan))), reference) < 1.0


def test_uploaded_jpeg_photo_preprocesses_like_the_canvas(reference: np.ndarray) -> None:
    photo = draw_four(ink=(30, 30, 40), paper=(230, 225, 215), mode="RGB")
    decoded = load_uploaded_image(encoded(photo, fmt="JPEG", quality=75))
    assert mean_abs_diff(preprocess_drawing(decoded), reference) < 6.0


def test_16_bit_png_using_the_full_range(reference: np.ndarray) -> None:
    gray16 = np.array(draw_four(mode="L", ink=255, paper=0)).astype(np.uint16) * 257
    decoded = load_uploaded_image(encoded(Image.fromarray(gray16)))
    assert np.array_equal(decoded.image, (gray16 // 257).astype(np.uint8))
    assert decoded.notes == ()
    assert mean_abs_diff(preprocess_drawing(decoded), reference) < 1.0


def test_16_bit_png_holding_12_bit_data_is_scaled_by_its_range(reference: np.ndarray) -> None:
    # The case: values up to 4095 in a 16-bit file, which read against 65535 looked empty.
    gray12 = (np.array(draw_four(mode="L", ink=255, paper=0)).astype(np.uint32) * 4095 // 255).astype(np.uint16)
    assert gray12.max() == 4095
    decoded = load_uploaded_image(encoded(Image.fromarray(gray12)))
    assert decoded.image.max() == 255
    assert any("12 bits" in note for note in decoded.notes)
    assert mean_abs_diff(preprocess_drawing(decoded), reference) < 1.0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(orientation: int) -> None:
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (5, 7), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(picture, exif=exif.tobytes())
    expected = np.array(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    decoded = load_uploaded_image(data)
    assert np.array_equal(decoded.image, expected)
    assert decoded.original_size == expected.shape[::-1]


def test_exif_orientation_of_a_reduced_phone_photo() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as phones write it
    data = encoded(Image.new("L", (4000, 3000), 200), fmt="JPEG", exif=exif.tobytes())
    decoded = load_uploaded_image(data)
    assert decoded.original_size == (3000, 4000)
    assert decoded.image.shape[0] > decoded.image.shape[1]


def test_animated_gif_says_which_frame_is_used_and_can_use_another() -> None:
    frames = [Image.new("L", (40, 40), 0) for _ in range(3)]
    for number, frame in enumerate(frames):
        ImageDraw.Draw(frame).rectangle([5 + 10 * number, 5, 10 + 10 * number, 35], fill=255)
    data = encoded(frames[0], fmt="GIF", save_all=True, append_images=frames[1:])
    first = load_uploaded_image(data)
    assert (first.frame, first.frame_count) == (0, 3)
    assert any("Frame 1 of 3" in note for note in first.notes)
    last = load_uploaded_image(data, frame=2)
    assert last.frame == 2
    ink_columns = np.flatnonzero(last.image.max(axis=0) > 128)
    assert (ink_columns.min(), ink_columns.max()) == (25, 30)
    with pytest.raises(InvalidImageError, match="has 3 frame"):
        load_uploaded_image(data, frame=3)


def test_multi_page_tiff_counts_its_pages() -> None:
    pages = [Image.new("L", (30, 30), shade) for shade in (0, 100)]
    decoded = load_uploaded_image(encoded(pages[0], fmt="TIFF", save_all=True, append_images=pages[1:]), frame=1)
    assert (decoded.frame, decoded.frame_count, int(decoded.image.mean())) == (1, 2, 100)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"not an image", "not a PNG, JPEG, GIF, BMP, WebP or TIFF image"),
        (encoded(Image.new("L", (20, 20)), fmt="TGA"), "not a PNG, JPEG"),
        (truncated(encoded(draw_four())), "damaged or truncated"),
        (truncated(encoded(draw_four(mode="RGB"), fmt="JPEG")), "damaged or truncated"),
        (encoded(Image.new("F", (20, 20)), fmt="TIFF"), "32-bit"),
    ],
    ids=["empty", "text", "format not offered", "truncated PNG", "truncated JPEG", "32-bit float TIFF"],
)
def test_bad_uploads_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        load_uploaded_image(data)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(10, id="Pillow error (over twice the limit)"),
        pytest.param(6_000, id="over the limit, which Pillow only warns about"),
    ],
)
def test_more_pixels_than_the_bomb_limit_are_refused(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    data = encoded(Image.new("L", (100, 100)), fmt="JPEG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(InvalidImageError, match="too many pixels"):
        load_uploaded_image(data)


def test_pillow_bomb_limit_is_left_on() -> None:
    before = Image.MAX_IMAGE_PIXELS
    load_uploaded_image(encoded(draw_four()))
    assert Image.MAX_IMAGE_PIXELS == before
    assert Image.MAX_IMAGE_PIXELS is not None


def test_a_large_picture_is_read_at_reduced_size() -> None:
    # 25 megapixels (refused before) of a 7 on paper, written a row at a time: 5000x5000 gray.
    decoded = load_uploaded_image(enlarged_png(5000, 5000, "L"))
    assert max(decoded.image.shape) <= WORKING_SIZE
    assert decoded.original_size == (5000, 5000)
    assert any("5000×5000" in note for note in decoded.notes)
    assert preprocess_drawing(decoded).max() == 255


def test_a_full_size_decode_over_the_budget_is_refused_but_jpeg_is_read_reduced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads, "FULL_DECODE_LIMIT_BYTES", 3_000_000)
    rgba = draw_four(paper=(255, 255, 255, 255)).resize((1000, 1000))  # 4 MB as Pillow holds it
    with pytest.raises(InvalidImageError, match=r"PNG image \(1000×1000 pixels\) would take 4 MB"):
        load_uploaded_image(encoded(rgba))
    assert max(load_uploaded_image(encoded(rgba.convert("RGB"), fmt="JPEG")).image.shape) <= WORKING_SIZE


def test_jpeg_is_decoded_by_the_jpeg_library_at_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    # If the JPEG were decoded at full size, it would reach reduce_to_gray at full size.
    seen = []
    monkeypatch.setattr(uploads, "reduce_to_gray", lambda image, factor: seen.append(image.size) or
                        reduce_to_gray(image, factor))
    load_uploaded_image(photo_jpeg(4000, 3000))
    assert seen == [(1000, 750)]


def test_reducing_averages_blocks_and_ignores_the_colour_of_transparent_pixels() -> None:
    pixels = np.array([[0, 100, 200], [40, 60, 255]], dtype=np.uint8)
    assert np.array_equal(reduce_to_gray(Image.fromarray(pixels), 2), [[50, 228]])
    # A white pixel that is fully transparent must not lighten the black ink beside it.
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 255, 255, 0)
    rgba[1, 1] = (0, 0, 0, 255)
    assert np.array_equal(reduce_to_gray(Image.fromarray(rgba), 2), [[[0, 64]]])


def test_concurrent_decodes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    active, peak = [0], [0]
    lock = threading.Lock()
    decode = uploads._decode

    def counting_decode(data: bytes, frame: int) -> DecodedUpload:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        try:
            return decode(data, frame)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(uploads, "_decode", counting_decode)
    data = encoded(draw_four())
    threads = [threading.Thread(target=load_uploaded_image, args=(data,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == MAX_CONCURRENT_DECODES


def test_only_the_formats_offered_to_strangers_are_opened() -> None:
    assert "EPS" not in ACCEPTED_FORMATS
    assert set(ACCEPTED_FORMATS) <= set(Image.registered_extensions().values())


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: transparent_png(5000), id="5000x5000 transparent PNG (the issue's 97 KB file)"),
        pytest.param(lambda: photo_jpeg(4000, 3000), id="12 MP JPEG photo"),
    ],
)
def test_decoding_stays_within_the_memory_budget(make, tmp_path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(make())
    figures = measure_decode_peak(path)
    assert "refused" not in figures["outcome"]
    assert figures["added_mb"] <= MEMORY_BUDGET_MB, figures
