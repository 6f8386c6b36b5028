"""The Draw page under AppTest with what a demo room brings: taps and specks on the canvas, bad and awkward uploads,
and pictures the models themselves do not recognise as digits. Each gets a clear message and never an exception. And
whole numbers: a photo (uploaded or from the camera) and the wide canvas, read digit by digit by every model."""

from __future__ import annotations

import base64
import io
import json
import shutil
from functools import cache

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from benchmarks.common import canvas_stroke
from dashboard.text import number_disagreement
from mnist_models import MODEL_NAMES
from mnist_models.data import load_mnist
from mnist_models.paths import CHECKPOINT_DIR, CHECKPOINT_DIR_ENV, REPO_ROOT
from tests import ink_corpus
from tests.upload_corpus import seven_sketch, streamed_png, transparent_png

APP = str(REPO_ROOT / "app.py")
DRAW = "pages/draw_page.py"


def draw_page() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page(DRAW).run()
    return app


def canvas_state(picture: np.ndarray) -> dict:
    """What the canvas component sends for ``picture`` (any array Pillow can save as PNG)."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"drawing": {"raw": {"objects": [{"type": "path"}], "background": "#000000"}, "data": url}}


def png(picture: np.ndarray | Image.Image) -> bytes:
    buffer = io.BytesIO()
    (picture if isinstance(picture, Image.Image) else Image.fromarray(picture)).save(buffer, format="PNG")
    return buffer.getvalue()


def messages(app: AppTest) -> str:
    return "\n".join(element.value for kind in ("info", "warning", "error") for element in getattr(app, kind))


@pytest.mark.parametrize(("case", "found"), [
    (ink_corpus.tap, "Found a dot"), (ink_corpus.single_pixel, "Found only a speck"),
    (ink_corpus.filled_shape, "not a"), (ink_corpus.scattered_specks, "not a digit")])
def test_no_digit_on_the_canvas_gets_what_was_found_and_no_answer(case, found):
    app = draw_page()
    app.session_state["canvas"] = canvas_state(case(np.random.default_rng(3)))
    app.run()
    assert not app.exception
    assert len(app.metric) == 0
    assert found in messages(app) and "The models only answer when there is a digit to read" in messages(app)


def _upload(app: AppTest, name: str, content: bytes, mime: str) -> AppTest:
    app.radio[0].set_value("Upload an image").run()
    app.get("file_uploader")[0].upload(name, content, mime).run()
    return app


def _gif(frames: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    pictures = [Image.fromarray(frame) for frame in frames]
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=200, loop=0)
    return buffer.getvalue()


def _seven_on_paper(side: int = 200) -> np.ndarray:
    return np.array(Image.fromarray(seven_sketch(400)).resize((side, side)))


def _twelve_bit_seven() -> bytes:
    """A 16-bit PNG holding 12-bit data (max 4095): light ink on black, the way a scanner's raw output looks."""
    data = (255 - _seven_on_paper()).astype(np.uint16) * 4095 // 255
    return streamed_png(data.shape[1], data.shape[0], "I;16", lambda row: data[row])


UPLOADS = {  # name: (file name, bytes, mime type, a phrase the page must say; None: every model answers)
    "empty file": ("empty.png", b"", "image/png", "empty"),
    "not an image": ("notes.png", b"these are words, not pixels" * 20, "image/png", "not a PNG, JPEG"),
    "truncated PNG": ("cut.png", png(_seven_on_paper())[:300], "image/png", "damaged or truncated"),
    "5000x5000 transparent PNG": ("huge.png", transparent_png(5000), "image/png", "no ink"),
    "blank white picture": ("blank.png", png(np.full((300, 300), 250, np.uint8)), "image/png", "no ink"),
    "12-bit data in a 16-bit PNG": ("scan.png", _twelve_bit_seven(), "image/png", None),
    "a 7 on paper": ("seven.png", png(_seven_on_paper()), "image/png", None),
}


@pytest.mark.parametrize("name", UPLOADS)
def test_bad_and_awkward_uploads_get_a_clear_message_or_an_answer(name):
    file_name, content, mime, phrase = UPLOADS[name]
    app = _upload(draw_page(), file_name, content, mime)
    assert not app.exception, [exception.value for exception in app.exception]
    if phrase is None:
        assert len(app.metric) == len(MODEL_NAMES)
        assert {metric.label: metric.value for metric in app.metric}["CNN"] == "7"
    else:
        assert len(app.metric) == 0 and phrase in messages(app), messages(app)


def test_an_animated_picture_says_which_frame_is_read_and_lets_the_person_choose():
    blank = np.full((200, 200), 255, np.uint8)
    app = _upload(draw_page(), "two.gif", _gif([blank, _seven_on_paper()]), "image/gif")
    assert not app.exception
    frame = app.number_input[0]
    assert "the file has 2" in frame.label and frame.value == 1
    assert len(app.metric) == 0  # frame 1 is blank paper
    frame.set_value(2).run()
    assert not app.exception
    assert {metric.label: metric.value for metric in app.metric}["CNN"] == "7"


def test_when_most_models_find_the_input_unlike_any_digit_they_give_no_answer(tmp_path, monkeypatch):
    """The models' own evidence: with thresholds no input can pass, every model flags the drawing, and the page
    says so instead of answering; the guesses stay available, folded away."""
    folder = tmp_path / "checkpoints"
    shutil.copytree(CHECKPOINT_DIR, folder)
    for path in folder.glob("*.metrics.json"):
        evaluation = json.loads(path.read_text())
        evaluation["novelty"]["threshold"] = -1e9
        path.write_text(json.dumps(evaluation))
    monkeypatch.setenv(CHECKPOINT_DIR_ENV, str(folder))
    app = draw_page()
    app.session_state["canvas"] = canvas_stroke(140, 50, 140, 230)
    app.run()
    assert not app.exception
    assert "This does not look like a digit to the models" in messages(app)
    assert f"{len(MODEL_NAMES)} of {len(MODEL_NAMES)}" in messages(app)
    assert "Their guesses anyway" in [expander.label for expander in app.expander]
    assert not app.success  # no "all models agree"


def test_a_drawn_digit_is_answered_with_the_server_time_shown():
    app = draw_page()
    picture = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    ImageDraw.Draw(picture).line([(90, 70), (190, 70), (120, 230)], fill="white", width=20)
    app.session_state["canvas"] = canvas_state(np.array(picture))
    app.run()
    assert not app.exception
    assert {metric.label: metric.value for metric in app.metric}["CNN"] == "7"
    assert any(caption.value.startswith("The server answered in ") for caption in app.caption)


@cache
def _first_test_digits() -> dict[str, np.ndarray]:
    """MNIST's first test image of each digit: a number made of them is one every model reads the same."""
    images, labels = load_mnist("test", download=False)
    return {str(digit): images[int((labels == digit).nonzero()[0][0])].numpy() for digit in range(10)}


def number_picture(text: str, height: int = 84, gap: int = 24, on_paper: bool = True) -> np.ndarray:
    """uint8 gray: ``text`` written with MNIST test digits side by side, dark ink on paper lit unevenly (a photo or a
    scan), or white on black (``on_paper=False``: the canvas)."""
    glyphs = [np.array(Image.fromarray(_first_test_digits()[character]).resize((height, height))) / 255.0
              for character in text]
    ink = np.zeros((height + 2 * gap, len(text) * (height + gap) + gap), np.float32)
    for position, glyph in enumerate(glyphs):
        left = gap + position * (height + gap)
        ink[gap:gap + height, left:left + height] = glyph
    if not on_paper:
        return (ink * 255).round().astype(np.uint8)
    paper = np.linspace(235, 190, ink.shape[1])[None, :]  # light falling off to one side
    return (paper * (1 - ink) + 30 * ink).round().astype(np.uint8)


def _jpeg(picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture).convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _readings(app: AppTest) -> dict[str, str]:
    """Model → the number it reads, from the page's table."""
    return app.table[0].value["reads"].to_dict()


def _photo_mode(camera: bool = False) -> AppTest:
    app = draw_page()
    app.radio[0].set_value("Photo or scan of a number").run()
    if camera:
        app.toggle(key="use_camera").set_value(True).run()
    return app


@pytest.mark.parametrize("camera", [False, True], ids=["uploaded", "camera"])
def test_a_photo_of_a_number_is_read_by_every_model_with_its_digits_boxed(mnist_root, camera):
    app = _photo_mode(camera)
    photo = _jpeg(number_picture("4075"))
    (app.camera_input[0] if camera else app.get("file_uploader")[0]).upload("number.jpg", photo, "image/jpeg").run()
    assert not app.exception, [exception.value for exception in app.exception]
    readings = _readings(app)
    assert len(readings) == len(MODEL_NAMES) and readings["CNN"] == "4075"
    table = app.table[0].value
    assert list(table.columns) == ["reads", "1st", "2nd", "3rd", "4th"] and table.loc["CNN", "3rd"].startswith("7 · ")
    assert (app.success or app.warning)[0].value == number_disagreement(readings)
    boxed, digits = app.get("image")
    assert boxed.captions[0].startswith("4 digits found")  # the photo with its boxes and readings
    assert digits.captions == ["1st", "2nd", "3rd", "4th"]  # the four 28×28 digits the models were given


def test_a_picture_with_no_digit_reads_nothing_and_says_so():
    app = _photo_mode()
    app.get("file_uploader")[0].upload("paper.png", png(np.full((300, 600), 220, np.uint8)), "image/png").run()
    assert not app.exception
    assert "No digit found in this picture" in messages(app) and len(app.table) == 0


def test_a_damaged_photo_gets_a_clear_error():
    app = _photo_mode()
    app.get("file_uploader")[0].upload("cut.png", png(_seven_on_paper())[:300], "image/png").run()
    assert not app.exception
    assert "damaged or truncated" in messages(app) and len(app.table) == 0


def number_drawn_on_the_wide_canvas(number: str) -> AppTest:
    """The Draw page after ``number`` was drawn on the wide canvas of "Draw a number"."""
    app = draw_page()
    app.radio[0].set_value("Draw a number").run()
    drawn = Image.fromarray(number_picture(number, height=200, gap=40, on_paper=False)).convert("RGBA")
    canvas = Image.new("RGBA", (840, 280), (0, 0, 0, 255))
    canvas.paste(drawn, (0, 0))
    app.session_state["number_canvas_840"] = canvas_state(np.array(canvas))
    return app.run()


def test_a_number_drawn_on_the_wide_canvas_is_read_like_a_photo(mnist_root):
    app = number_drawn_on_the_wide_canvas("931")
    assert not app.exception, [exception.value for exception in app.exception]
    assert _readings(app)["CNN"] == "931"
