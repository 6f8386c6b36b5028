"""The room's drawings in the dashboard, under AppTest: a visitor says what a drawing on Draw was (Right, It was …,
or a number's digits typed in) and takes it back; a confident correction is held and a session beyond the rate limit
is told so; the Room page counts the drawings and scores every model on them; curation needs the passphrase, stops a
session guessing it, and relabels, reviews, deletes, exports and imports; an unavailable database is a sentence on
both pages, never an exception. Each test has its own SQLite file."""

from __future__ import annotations

import io
import zipfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from dashboard import room
from dashboard.handoff import LAST_DRAWING_KEY
from mnist_models import MODEL_NAMES
from mnist_models.paths import REPO_ROOT, ROOM_DB_ENV
from mnist_models.store.room_db import ROOM_RATE_LIMIT, ModelAnswer, open_room
from tests.test_draw_page import canvas_state, draw_page, messages, number_drawn_on_the_wide_canvas
from tests.test_room_store import write_picture_tree

APP = str(REPO_ROOT / "app.py")
ROOM = "pages/room_page.py"
PASSPHRASE = "seven ate nine"


@pytest.fixture(autouse=True)
def room_db(tmp_path, monkeypatch) -> str:
    """The test's own database, no curator passphrase, and no store cached from another test."""
    url = f"sqlite:///{tmp_path / 'room.sqlite'}"
    monkeypatch.setenv(ROOM_DB_ENV, url)
    monkeypatch.delenv(room.PASSPHRASE_ENV, raising=False)
    room._store.clear()
    return url


def drawn_seven() -> AppTest:
    """The Draw page with a 7 on its canvas, answered by every model."""
    app = draw_page()
    picture = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    ImageDraw.Draw(picture).line([(90, 70), (190, 70), (120, 230)], fill="white", width=20)
    app.session_state["canvas"] = canvas_state(np.array(picture))
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def room_page() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page(ROOM).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def said(app: AppTest) -> str:
    return messages(app) + "\n" + "\n".join(element.value for element in app.success)


def test_it_was_a_7_keeps_the_drawing_with_every_model_s_answer_and_take_back_removes_it(room_db):
    app = drawn_seven()
    app.segmented_control(key=room.IT_WAS_KEY).set_value(7).run()
    assert not app.exception
    store = open_room(room_db)
    (record,) = store.drawings()
    assert (record.label, record.input_kind, record.position, record.status) == (7, "canvas", None, "kept")
    assert set(record.answers) == set(MODEL_NAMES) and set(record.checkpoints) <= set(record.answers)
    assert record.session_id == app.session_state[room.SESSION_KEY]
    assert record.image.shape == (28, 28) and record.image.max() > 0
    assert (store.original_png(record.id) or b"").startswith(b"\x89PNG")
    assert "Kept as a 7 (thank you)." in said(app)

    app.button(key="room_take_back").click().run()
    assert not app.exception
    assert store.drawings() == [] and "Taken back" in said(app)


def test_right_keeps_the_models_majority_answer():
    app = drawn_seven()
    app.button(key="room_right").click().run()
    assert not app.exception
    (record,) = open_room().drawings()
    majority, _ = Counter(answer.digit for answer in record.answers.values()).most_common(1)[0]
    assert record.label == majority == 7 and "Kept as a 7" in said(app)


def test_a_correction_every_model_was_sure_of_is_held_and_a_session_beyond_the_rate_limit_is_told_to_wait(room_db):
    app = drawn_seven()
    app.segmented_control(key=room.IT_WAS_KEY).set_value(1).run()
    (record,) = open_room(room_db).drawings()
    assert record.status == "held"
    assert "Kept for a curator to check, since every model was sure it was a 7." in said(app)

    app = drawn_seven()
    app.session_state[room.SESSION_KEY] = "busy-visitor"
    store = open_room(room_db)
    for _ in range(ROOM_RATE_LIMIT):
        store.add("busy-visitor", record.image.copy(), 7, "canvas")
    app.button(key="room_right").click().run()
    assert not app.exception
    assert "Not kept: This session has saved 30 drawings in the last 60 s" in said(app)
    assert len(store.drawings(session="busy-visitor")) == ROOM_RATE_LIMIT


def test_a_number_typed_in_keeps_each_of_its_digits_at_its_position(mnist_root):
    app = number_drawn_on_the_wide_canvas("931")
    app.text_input(key=room.NUMBER_WAS_KEY).input("93").run()
    assert not app.exception
    assert "Type the 3 digits found, left to right" in said(app) and open_room().drawings() == []
    app.text_input(key=room.NUMBER_WAS_KEY).input("931").run()
    assert not app.exception
    records = open_room().drawings()
    assert sorted((record.position, record.label) for record in records) == [(0, 9), (1, 3), (2, 1)]
    assert all(record.input_kind == "canvas" and set(record.answers) == set(MODEL_NAMES) for record in records)
    assert "Kept as 931 (thank you)." in said(app)


def test_the_room_page_counts_the_drawings_and_scores_every_model_with_an_interval():
    app = drawn_seven()
    app.button(key="room_right").click().run()
    app.switch_page(ROOM).run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert app.metric[0].label == "Drawings" and app.metric[0].value == "1"
    table = app.dataframe[0].value
    assert len(table) == len(MODEL_NAMES) and (table["drawings"] == 1).all()
    assert ((table["95% from"] <= table["accuracy"]) & (table["accuracy"] <= table["95% to"])).all()
    assert "Curation is off" in said(app)


def test_an_empty_room_says_how_to_fill_it():
    assert "The room is empty" in said(room_page())


def _unlock(app: AppTest, passphrase: str) -> AppTest:
    app.text_input(key=room.PASSPHRASE_KEY).input(passphrase)
    return app.button(key="room_unlock").click().run()


def test_curation_needs_the_passphrase_and_a_session_guessing_it_is_stopped(monkeypatch):
    monkeypatch.setenv(room.PASSPHRASE_ENV, PASSPHRASE)
    app = room_page()
    for _ in range(1, room.MAX_FAILED_ATTEMPTS):
        assert "Wrong passphrase" in said(_unlock(app, "eight"))
    fifth = said(_unlock(app, "eight"))
    assert f"That was the 5th wrong one in 5 minutes: wait {room.ATTEMPT_WINDOW_S} s" in fifth
    assert "Too many wrong passphrases: try again in " in said(_unlock(app, PASSPHRASE))
    assert [button for button in app.button if button.key == "room_relabel"] == []


def test_with_the_passphrase_a_curator_relabels_reviews_deletes_and_can_export(room_db, monkeypatch):
    monkeypatch.setenv(room.PASSPHRASE_ENV, PASSPHRASE)
    store = open_room(room_db)
    image = np.random.default_rng(0).integers(0, 256, size=(28, 28), dtype=np.uint8)
    held = store.add("visitor-a", image, 1, "canvas", answers={"cnn": ModelAnswer(7, 0.99)})
    kept = store.add("visitor-b", image, 3, "upload")
    other = store.add("visitor-b", image, 4, "upload")
    assert store.get(held).status == "held"
    app = _unlock(room_page(), PASSPHRASE)
    assert not app.exception and "Wrong passphrase" not in said(app)
    assert {button.label for button in app.download_button} == {"Download IDX (zip)", "Download NPZ"}

    app.selectbox(key="room_curate_pick").set_value(held).run()
    app.selectbox(key=f"room_relabel_{held}").set_value(7).run()
    app.button(key="room_relabel").click().run()
    assert store.get(held).label == 7 and store.get(held).status == "kept"  # the models agree with the new label
    app.button(key="room_review").click().run()
    assert store.get(held).status == "reviewed"

    app.selectbox(key="room_curate_pick").set_value(kept).run()
    app.button(key="room_delete").click().run()
    assert [record.id for record in store.drawings()] == [held, other]
    app.selectbox(key="room_curate_pick").set_value(other).run()
    app.button(key="room_delete_session").click().run()
    assert not app.exception
    assert [record.id for record in store.drawings()] == [held] and "Deleted the session's 1 drawing." in said(app)


def test_an_unavailable_database_is_a_sentence_on_both_pages_not_an_exception(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-folder" / "room.sqlite"
    monkeypatch.setenv(ROOM_DB_ENV, f"sqlite:///{missing}")
    app = drawn_seven()
    app.segmented_control(key=room.IT_WAS_KEY).set_value(7).run()
    assert not app.exception
    assert f"Not kept: The room's database {missing} cannot be opened" in said(app)
    assert app.segmented_control(key=room.IT_WAS_KEY).value is None  # still offered, to try again

    page = room_page()
    assert "The room's drawings cannot be shown: The room's database" in said(page)
    assert "Curation" in [header.value for header in page.subheader]


def test_a_curator_imports_a_zip_of_labelled_pictures_and_sees_what_was_skipped(room_db, monkeypatch, tmp_path):
    monkeypatch.setenv(room.PASSPHRASE_ENV, PASSPHRASE)
    write_picture_tree(tmp_path / "pictures")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted((tmp_path / "pictures").rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(tmp_path / "pictures").as_posix())
    app = _unlock(room_page(), PASSPHRASE)
    app.get("file_uploader")[0].upload("pictures.zip", archive.getvalue(), "application/zip").run()
    app.button(key="room_import").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert "Imported 2 pictures; skipped 3." in said(app)
    assert sorted(app.dataframe[-1].value["file"]) == ["3/blank.png", "3/notes.txt", "readme.txt"]
    assert sorted(record.label for record in open_room(room_db).drawings(input_kind="import")) == [1, 7]


def test_a_drawing_most_models_misread_is_in_the_gallery_and_opens_in_explain(room_db):
    app = drawn_seven()
    app.segmented_control(key=room.IT_WAS_KEY).set_value(1).run()  # every model reads 7: held, then reviewed
    store = open_room(room_db)
    (record,) = store.drawings()
    store.mark_reviewed(record.id)
    app.switch_page(ROOM).run()
    assert not app.exception
    everyone = f"{len(MODEL_NAMES)} of {len(MODEL_NAMES)} wrong"
    captions = [caption for image in app.get("image") for caption in image.captions]
    assert any(caption.startswith(f"1st: label 1, {everyone}") for caption in captions), captions
    app.button(key="room_misread_explain").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert np.array_equal(app.session_state[LAST_DRAWING_KEY], record.image)
    assert app.title[0].value.startswith("Explain")
