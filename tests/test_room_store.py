"""The room's drawings: kept and read back exactly, taken back by their session only, curated, rate-limited, held
for review, migrated, exported, imported from folders and zips, split by session, scored with a Wilson interval; a
database that cannot be used says so in a sentence. Temporary SQLite files only, no MNIST."""

from __future__ import annotations

import io
import sqlite3
import threading
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from PIL import Image, ImageDraw
from sqlalchemy import create_engine
from torch import nn

from mnist_models import room
from mnist_models.data import read_idx
from mnist_models.paths import ROOM_DB_ENV
from mnist_models.room import ImportRefusedError, import_pictures, measure_on_room, split_by_session, wilson_interval
from mnist_models.store.room_db import (
    IDX_IMAGES,
    IDX_LABELS,
    MAX_ORIGINAL_PNG_BYTES,
    RATE_WINDOW,
    ROOM_DB_FILE,
    ROOM_RATE_LIMIT,
    VERSION_TABLE,
    DrawingNotFoundError,
    InvalidDrawingError,
    ModelAnswer,
    RoomDrawing,
    RoomRateLimitError,
    RoomRecord,
    RoomUnavailableError,
    open_room,
)

ONE = [(140, 40), (140, 240)]
SEVEN = [(70, 50), (210, 50), (120, 240)]


class Clock:
    """A UTC clock the test moves by hand, so the rate limit is tried without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def digit_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(28, 28), dtype=np.uint8)


def png_bytes(size: int = 28) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (size, size), 0).save(buffer, "PNG")
    return buffer.getvalue()


def stroke_picture(points: list[tuple[int, int]], picture_format: str = "PNG", dark_on_light: bool = False) -> bytes:
    """A digit drawn as a thick stroke on a 280 px canvas, light on dark (the Draw page's) or dark on light."""
    paper, ink = (255, 0) if dark_on_light else (0, 255)
    picture = Image.new("L", (280, 280), paper)
    ImageDraw.Draw(picture).line(points, fill=ink, width=20, joint="curve")
    buffer = io.BytesIO()
    picture.save(buffer, picture_format)
    return buffer.getvalue()


@pytest.fixture
def store(tmp_path):
    return open_room(sqlite_url(tmp_path / "room.sqlite"))


def test_a_drawing_is_kept_and_read_back_exactly(store):
    image = digit_image()
    original = png_bytes()
    drawing_id = store.add("visitor-1", image, 4, "canvas", answers={"cnn": ModelAnswer(4, 0.97)},
                           checkpoints={"cnn": "weights-1"}, original_png=original, position=2)
    record = store.get(drawing_id)
    assert len(drawing_id) == 32 and record.id == drawing_id and record.session_id == "visitor-1"
    assert record.image.dtype == np.uint8 and record.image.tobytes() == image.tobytes()
    assert (record.label, record.position, record.input_kind, record.status, record.dataset) == (
        4, 2, "canvas", "kept", "mnist")
    assert record.answers == {"cnn": ModelAnswer(4, 0.97)} and record.checkpoints == {"cnn": "weights-1"}
    assert record.created.tzinfo is not None and abs(datetime.now(UTC) - record.created) < timedelta(minutes=1)
    assert store.original_png(drawing_id) == original
    assert [listed.id for listed in store.drawings()] == [drawing_id]
    assert store.drawings(status="held") == [] and store.drawings(session="visitor-2") == []
    assert [listed.id for listed in store.drawings(label=4, input_kind="canvas")] == [drawing_id]


def test_counts_give_every_label_kind_and_status(store):
    store.add("visitor", digit_image(), 1, "canvas")
    store.add("visitor", digit_image(), 1, "upload")
    store.add("visitor", digit_image(), 7, "camera", answers={"mlp": ModelAnswer(1, 0.99)})
    counts = store.counts()
    assert counts.total == 3 and counts.by_label == {**dict.fromkeys(range(10), 0), 1: 2, 7: 1}
    assert counts.by_kind == {"canvas": 1, "upload": 1, "camera": 1, "import": 0}
    assert counts.by_status == {"kept": 2, "held": 1, "reviewed": 0}


def test_only_the_session_that_saved_a_drawing_can_take_it_back(store):
    drawing_id = store.add("visitor-1", digit_image(), 3, "canvas")
    with pytest.raises(DrawingNotFoundError, match="This session has no drawing"):
        store.take_back(drawing_id, "visitor-2")
    assert store.get(drawing_id).session_id == "visitor-1"
    store.take_back(drawing_id, "visitor-1")
    with pytest.raises(DrawingNotFoundError):
        store.get(drawing_id)


def test_a_curator_relabels_marks_reviewed_and_deletes(store):
    drawing_id = store.add("visitor", digit_image(), 3, "canvas")
    store.relabel(drawing_id, 8)
    assert store.get(drawing_id).label == 8
    store.mark_reviewed(drawing_id)
    assert store.get(drawing_id).status == "reviewed"
    store.delete(drawing_id)
    assert store.drawings() == []
    for change in (store.delete, store.mark_reviewed, store.get, store.original_png):
        with pytest.raises(DrawingNotFoundError, match="The room has no drawing"):
            change(drawing_id)
    with pytest.raises(DrawingNotFoundError, match="The room has no drawing"):
        store.relabel(drawing_id, 2)


def test_deleting_a_session_removes_its_drawings_and_no_other(store):
    for seed in range(3):
        store.add("leaving", digit_image(seed), seed, "canvas")
    staying = store.add("staying", digit_image(), 5, "canvas")
    assert store.delete_session("leaving") == 3 and store.delete_session("leaving") == 0
    assert [record.id for record in store.drawings()] == [staying]


def test_a_session_keeps_at_most_the_rate_limit_in_any_minute(tmp_path):
    clock = Clock()
    store = open_room(sqlite_url(tmp_path / "room.sqlite"), clock=clock)
    for _ in range(ROOM_RATE_LIMIT):
        store.add("eager", digit_image(), 1, "canvas")
        clock.advance(1)
    with pytest.raises(RoomRateLimitError, match=f"at most {ROOM_RATE_LIMIT} per session"):
        store.add("eager", digit_image(), 1, "upload")
    store.add("another", digit_image(), 1, "canvas")
    store.add("eager", digit_image(), 1, "import")  # a curator's import is not a visitor's drawing
    clock.now += RATE_WINDOW - timedelta(seconds=ROOM_RATE_LIMIT - 0.5)  # the first drawing is now a minute old
    store.add("eager", digit_image(), 1, "camera")
    with pytest.raises(RoomRateLimitError):
        store.add("eager", digit_image(), 1, "canvas")
    assert len(store.drawings(session="eager")) == ROOM_RATE_LIMIT + 2


@pytest.mark.parametrize(("change", "message"), [
    ({"label": 10}, "The label must be a digit"),
    ({"label": True}, "The label must be a digit"),
    ({"image": np.zeros((28, 28), np.float32)}, "28×28 uint8"),
    ({"image": np.zeros((28, 27), np.uint8)}, "28×28 uint8"),
    ({"input_kind": "fax"}, "The input kind is one of"),
    ({"session_id": "x" * 65}, "A session id is 1 to 64"),
    ({"session_id": "a b"}, "A session id is 1 to 64"),
    ({"position": -1}, "The position is"),
    ({"answers": {"cnn": ModelAnswer(11, 0.5)}}, "The answer of 'cnn' must be a digit"),
    ({"answers": {"cnn": ModelAnswer(1, 1.5)}}, "confidence from 0 to 1"),
    ({"original_png": b"GIF89a"}, "bytes of a PNG file"),
    ({"original_png": png_bytes()[:8] + bytes(MAX_ORIGINAL_PNG_BYTES)}, "at most 524,288 bytes"),
])
def test_a_drawing_that_breaks_the_table_s_rules_is_refused_and_nothing_is_kept(store, change, message):
    drawing = {"session_id": "visitor", "image": digit_image(), "label": 3, "input_kind": "canvas", **change}
    with pytest.raises(InvalidDrawingError, match=message):
        store.add(**drawing)
    assert store.counts().total == 0


def test_a_confident_correction_is_held_and_kept_out_of_training_until_reviewed(store):
    sure, unsure = ModelAnswer(5, 0.95), ModelAnswer(5, 0.89)
    held = store.add("visitor", digit_image(), 3, "canvas", answers={"cnn": sure, "mlp": ModelAnswer(8, 0.9)})
    kept = {
        "one model agrees": store.add("visitor", digit_image(), 3, "canvas", answers={"cnn": sure,
                                                                                     "mlp": ModelAnswer(3, 0.4)}),
        "one model unsure": store.add("visitor", digit_image(), 3, "canvas", answers={"cnn": sure, "mlp": unsure}),
        "a confirmation": store.add("visitor", digit_image(), 5, "canvas", answers={"cnn": sure}),
        "no answers": store.add("visitor", digit_image(), 3, "upload"),
    }
    assert store.get(held).status == "held"
    assert {case: store.get(drawing_id).status for case, drawing_id in kept.items()} == dict.fromkeys(kept, "kept")
    assert store.training_set() == []  # nothing reviewed yet
    assert {record.id for record in store.training_set(reviewed_only=False)} == set(kept.values())

    store.relabel(kept["a confirmation"], 3)  # now every model contradicts it, surely
    assert store.get(kept["a confirmation"]).status == "held"
    store.relabel(held, 5)  # now the models agree with it
    assert store.get(held).status == "kept"
    store.relabel(held, 3)
    store.mark_reviewed(held)
    assert [record.id for record in store.training_set()] == [held]
    store.relabel(held, 4)  # a curator's word stands
    assert store.get(held).status == "reviewed"


def test_the_migrations_build_the_schema_in_an_empty_database_and_opening_again_changes_nothing(tmp_path):
    path = tmp_path / "room.sqlite"
    path.touch()  # an empty file is an empty SQLite database
    store = open_room(sqlite_url(path))
    with sqlite3.connect(path) as raw:
        tables = {name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert raw.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [("0001",)]
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert tables == {"room_drawings", VERSION_TABLE}  # not Alembic's default table, which Optuna uses
    with create_engine(sqlite_url(path)).connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, RoomDrawing.metadata) == []  # the model maps the schema the migrations built

    drawing_id = store.add("visitor", digit_image(), 2, "canvas")
    again = open_room(sqlite_url(path))
    assert again.get(drawing_id).label == 2
    with sqlite3.connect(path) as raw:
        assert raw.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [("0001",)]


def test_the_default_database_is_room_sqlite_in_the_runs_folder_unless_the_environment_names_one(tmp_path, runs_dir,
                                                                                                 monkeypatch):
    monkeypatch.delenv(ROOM_DB_ENV, raising=False)
    assert open_room().where == str(runs_dir / ROOM_DB_FILE) and (runs_dir / ROOM_DB_FILE).is_file()
    monkeypatch.setenv(ROOM_DB_ENV, sqlite_url(tmp_path / "elsewhere.sqlite"))
    assert open_room().where == str(tmp_path / "elsewhere.sqlite")


def test_the_training_set_exports_as_mnist_idx_files_and_as_npz(store, tmp_path):
    ids = [store.add(f"visitor-{seed % 2}", digit_image(seed), seed % 10, "canvas") for seed in range(5)]
    for drawing_id in ids[:4]:
        store.mark_reviewed(drawing_id)
    reviewed = store.training_set()

    images_path, labels_path = store.export_idx(tmp_path / "export")
    assert (images_path.name, labels_path.name) == (IDX_IMAGES, IDX_LABELS)
    assert images_path.read_bytes()[:16] == bytes.fromhex("00000803 00000004 0000001c 0000001c")
    assert labels_path.read_bytes()[:8] == bytes.fromhex("00000801 00000004")
    assert np.array_equal(read_idx(images_path), np.stack([record.image for record in reviewed]))
    assert read_idx(labels_path).tolist() == [record.label for record in reviewed] == [0, 1, 2, 3]

    path = store.export_npz(tmp_path / "export" / "room.npz", reviewed_only=False)
    with np.load(path, allow_pickle=False) as exported:
        assert not any(exported[name].dtype.hasobject for name in exported.files)
        assert np.array_equal(exported["images"], np.stack([digit_image(seed) for seed in range(5)]))
        assert exported["labels"].tolist() == [0, 1, 2, 3, 4] and exported["ids"].tolist() == ids
        assert exported["sessions"].tolist() == ["visitor-0", "visitor-1"] * 2 + ["visitor-0"]
    assert [path.name for path in sorted((tmp_path / "export").iterdir())] == [IDX_IMAGES, IDX_LABELS, "room.npz"]


def write_picture_tree(root: Path) -> dict[str, bytes]:
    """A folder of pictures sorted by digit, with a blank, a file that is no picture and one outside any digit."""
    files = {
        "1/stroke.png": stroke_picture(ONE),
        "7/photo.jpg": stroke_picture(SEVEN, "JPEG", dark_on_light=True),
        "3/blank.png": png_bytes(280),
        "3/notes.txt": b"not a picture",
        "readme.txt": b"digits sorted by folder",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def check_import(store, report, files):
    records = {record.label: record for record in store.drawings()}
    assert sorted(records) == [1, 7] and sorted(report.added) == sorted(record.id for record in records.values())
    assert all((record.input_kind, record.status, record.session_id) == ("import", "kept", "curator")
               for record in records.values())
    assert records[1].image.shape == (28, 28) and records[1].image.max() > 0
    assert store.original_png(records[1].id) == files["1/stroke.png"] and store.original_png(records[7].id) is None
    reasons = {skipped.name: skipped.reason for skipped in report.skipped}
    assert sorted(reasons) == ["3/blank.png", "3/notes.txt", "readme.txt"]
    assert "no ink" in reasons["3/blank.png"] and "not a PNG, JPEG" in reasons["3/notes.txt"]
    assert "not in a folder named by its digit" in reasons["readme.txt"]


def test_a_folder_of_pictures_sorted_by_digit_is_imported_and_refused_pictures_are_reported(store, tmp_path):
    files = write_picture_tree(tmp_path / "pictures")
    check_import(store, import_pictures(store, tmp_path / "pictures", "curator"), files)


def test_a_zip_of_pictures_sorted_by_digit_is_imported(store, tmp_path):
    files = write_picture_tree(tmp_path / "pictures")
    with zipfile.ZipFile(tmp_path / "pictures.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.mkdir("1")
        for name, data in files.items():
            archive.writestr(name, data)
    check_import(store, import_pictures(store, tmp_path / "pictures.zip", "curator"), files)


@pytest.mark.parametrize(("entries", "message"), [
    ({"../7/escape.png": b""}, "holds an entry that leaves it"),
    ({"/7/absolute.png": b""}, "holds an entry that leaves it"),
    ({f"1/{number}.png": b"" for number in range(room.MAX_IMPORT_ENTRIES + 1)}, "entries; an import reads at most"),
])
def test_a_zip_leaving_its_folder_or_with_too_many_entries_is_refused_before_anything_is_read(store, tmp_path, entries,
                                                                                            message):
    path = tmp_path / "pictures.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("1/stroke.png", stroke_picture(ONE))
        for name, data in entries.items():
            archive.writestr(name, data)
    with pytest.raises(ImportRefusedError, match=message):
        import_pictures(store, path, "curator")
    assert store.counts().total == 0


def test_a_zip_that_unpacks_beyond_the_limit_or_is_no_zip_is_refused(store, tmp_path, monkeypatch):
    path = tmp_path / "pictures.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("1/stroke.png", stroke_picture(ONE))
        archive.writestr("1/zeros.png", bytes(100_000))  # compresses to a few hundred bytes
    monkeypatch.setattr(room, "MAX_IMPORT_BYTES", 50_000)
    with pytest.raises(ImportRefusedError, match="once unpacked; an import reads at most 50.0 KB"):
        import_pictures(store, path, "curator")
    (tmp_path / "fake.zip").write_bytes(b"PK not really")
    with pytest.raises(ImportRefusedError, match="neither a folder nor a zip file"):
        import_pictures(store, tmp_path / "fake.zip", "curator")
    assert store.counts().total == 0


def record_of(session_id: str, number: int) -> RoomRecord:
    return RoomRecord(id=f"{session_id}-{number}", session_id=session_id, created=datetime.now(UTC),
                      input_kind="canvas", label=number % 10, position=None, image=digit_image(), answers={},
                      checkpoints={}, status="reviewed", dataset="mnist")


def test_the_split_puts_every_session_on_one_side_the_same_way_for_a_seed_however_the_room_grows():
    records = [record_of(f"session-{session}", number) for session in range(200) for number in range(3)]
    train, held_out = split_by_session(records, held_out_share=0.25, seed=7)
    train_sessions, held_sessions = {r.session_id for r in train}, {r.session_id for r in held_out}
    assert train_sessions.isdisjoint(held_sessions) and len(train) + len(held_out) == len(records)
    assert 0.15 < len(held_sessions) / 200 < 0.35
    assert split_by_session(records, 0.25, seed=7) == (train, held_out)
    assert split_by_session(records, 0.25, seed=8)[1] != held_out

    grown = records + [record_of(f"newcomer-{session}", 0) for session in range(50)]
    assert {r.session_id for r in split_by_session(grown, 0.25, seed=7)[1] if r.session_id in train_sessions} == set()
    assert {r.session_id for r in split_by_session(grown, 0.25, seed=7)[1]} >= held_sessions
    assert split_by_session(records, 0.0) == (records, []) and split_by_session(records, 1.0) == ([], records)
    with pytest.raises(ValueError, match="held_out_share"):
        split_by_session(records, 1.5)


def test_a_read_only_database_reads_but_refuses_to_keep_with_a_sentence(tmp_path):
    path = tmp_path / "room.sqlite"
    writable = open_room(sqlite_url(path))
    drawing_id = writable.add("visitor", digit_image(), 6, "canvas")
    writable.close()
    read_only = open_room(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert read_only.get(drawing_id).label == 6
    with pytest.raises(RoomUnavailableError, match=r"is read-only: nothing can be saved in it\. Fix it, or set "
                                                   r"DIGIT_LAB_ROOM_DB to another database\."):
        read_only.add("visitor", digit_image(), 6, "canvas")


def test_a_missing_folder_or_a_file_that_is_no_database_is_unavailable_with_a_sentence(tmp_path):
    missing = tmp_path / "no-such-folder" / "room.sqlite"
    with pytest.raises(RoomUnavailableError, match=f"{missing} cannot be opened: its folder is missing"):
        open_room(sqlite_url(missing))
    corrupt = tmp_path / "room.sqlite"
    corrupt.write_bytes(np.random.default_rng(0).bytes(8192))
    with pytest.raises(RoomUnavailableError, match=f"{corrupt} is not an SQLite database"):
        open_room(sqlite_url(corrupt))
    with pytest.raises(RoomUnavailableError, match="a URL SQLAlchemy cannot read"):
        open_room("not a url")


def test_two_threads_adding_at_once_to_one_sqlite_file_lose_no_row(tmp_path):
    url = sqlite_url(tmp_path / "room.sqlite")
    stores = [open_room(url), open_room(url)]  # as two server processes would, each with its own connections
    start = threading.Barrier(len(stores))
    errors = []

    def add_many(store, thread):
        start.wait()
        try:
            for number in range(40):
                store.add(f"thread-{thread}-{number // 20}", digit_image(number), number % 10, "canvas")
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=add_many, args=(store, thread)) for thread, store in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and stores[0].counts().total == 80
    assert len({record.id for record in stores[1].drawings()}) == 80


def test_the_image_is_stored_as_its_raw_bytes_and_the_answers_as_json(store, tmp_path):
    drawing_id = store.add("visitor", digit_image(3), 9, "canvas", answers={"cnn": ModelAnswer(9, 0.5)})
    with sqlite3.connect(tmp_path / "room.sqlite") as raw:
        image, answers = raw.execute("SELECT image, answers FROM room_drawings WHERE id = ?", (drawing_id,)).fetchone()
    assert image == digit_image(3).tobytes() and answers == '{"cnn": {"digit": 9, "confidence": 0.5}}'


class Answers(nn.Module):
    """A network that answers ``digit`` whatever it is shown."""

    def __init__(self, digit: int) -> None:
        super().__init__()
        self.digit = digit
        self.bias = nn.Parameter(torch.zeros(10))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((len(images),), self.digit), 10).float() + self.bias


def test_each_model_s_accuracy_on_the_room_comes_with_a_wilson_interval_around_it():
    records = [record_of("visitor", number) for number in range(10)]  # labels 0 to 9
    measured = measure_on_room({"sevens": Answers(7), "threes": Answers(3)}, records)
    sevens = measured.scores["sevens"]
    assert (sevens.correct, sevens.count, sevens.accuracy) == (1, 10, 0.1) and sevens.predictions.tolist() == [7] * 10
    assert sevens.interval == pytest.approx((0.0179, 0.4042), abs=1e-4)  # Wilson's, for 1 of 10 at 95%
    assert sevens.interval[0] < sevens.accuracy < sevens.interval[1]
    confusion = np.array(measured.confusion("sevens"))
    assert confusion.sum() == 10 and confusion[:, 7].sum() == 10 and confusion[7, 7] == 1
    assert measured.misread_by().tolist() == [2, 2, 2, 1, 2, 2, 2, 1, 2, 2]
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)  # never beyond 1, unlike p ± 1.96·σ


def test_a_room_without_drawings_has_no_accuracy_and_no_interval():
    empty = measure_on_room({"sevens": Answers(7)}, [])
    score = empty.scores["sevens"]
    assert (score.count, score.accuracy, score.interval, score.predictions.tolist()) == (0, None, None, [])
    assert empty.misread_by().tolist() == [] and np.array(empty.confusion("sevens")).sum() == 0
    assert measure_on_room({}, [record_of("visitor", 1)]).misread_by().tolist() == [0]
