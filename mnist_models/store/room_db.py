"""The room's drawings: the digits visitors drew and then confirmed ("right") or corrected ("it was a 4"), kept in a
database to be curated, exported and split for training.

One table, ``room_drawings`` (``RoomDrawing``): the 28×28 MNIST-style input as its 784 raw bytes, the picture it
came from as PNG bytes, and each model's answer and the weights it answered with, as JSON. Nothing read back is
unpickled or run. The database is ``$DIGIT_LAB_ROOM_DB`` (any SQLAlchemy URL, e.g. ``postgresql+psycopg://…``),
else the SQLite file ``room.sqlite`` in the runs folder. On SQLite every connection uses WAL and waits up to
BUSY_TIMEOUT_MS for another writer, and a write takes the write lock as it begins (``BEGIN IMMEDIATE``), so several
sessions and several server processes on one machine write to one file without losing a row, and a write's checks
(the rate limit) and its insert happen under one lock. The schema is versioned by Alembic (``room_migrations/``,
under digit-lab's own version table, VERSION_TABLE) and brought up to date when the store opens.

The rules: a visitor's session keeps at most ROOM_RATE_LIMIT drawings per RATE_WINDOW (imports are a curator's and
are not counted); a drawing is taken back only by the session that made it; a confident correction is held for a
curator (``held_for_review``) and stays out of the training set until it is marked reviewed. A database that cannot
be opened, read or written (a missing folder, a read-only or locked file, a file that is not a database) is a
``RoomUnavailableError`` that says so in a sentence.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from ..data import idx_bytes
from ..errors import DigitLabError
from ..extras import needs_extra
from ..paths import ROOM_DB_ENV, resolve_runs_dir
from .files import atomic_write

with needs_extra("room", "Keeping the room's drawings"):
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError
    from sqlalchemy import (
        JSON,
        ColumnElement,
        Connection,
        DateTime,
        Dialect,
        Engine,
        Index,
        Integer,
        LargeBinary,
        String,
        TypeDecorator,
        create_engine,
        delete,
        event,
        func,
        select,
    )
    from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
    from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Mapped, Session, mapped_column

InputKind = Literal["canvas", "upload", "camera", "import"]
Status = Literal["kept", "held", "reviewed"]
INPUT_KINDS: tuple[InputKind, ...] = get_args(InputKind)
VISITOR_KINDS: tuple[InputKind, ...] = ("canvas", "upload", "camera")
"""The kinds a visitor saves from the Draw page, which the rate limit counts; ``import`` is a curator's batch."""
STATUSES: tuple[Status, ...] = get_args(Status)

ROOM_DB_FILE = "room.sqlite"  # in the runs folder, unless $DIGIT_LAB_ROOM_DB names another database
VERSION_TABLE = "digit_lab_room_version"  # not Alembic's default, which Optuna's tables in a shared database use
MIGRATIONS = Path(__file__).with_name("room_migrations")
BUSY_TIMEOUT_MS = 10_000
ROOM_RATE_LIMIT = 30
RATE_WINDOW = timedelta(seconds=60)
"""A session keeps at most ROOM_RATE_LIMIT drawings in any RATE_WINDOW: a visitor drawing by hand saves one every few
seconds; a script posting drawings is stopped."""
HOLD_CONFIDENCE = 0.9  # a correction every model contradicted at least this surely is held (held_for_review)
MAX_ORIGINAL_PNG_BYTES = 512 * 1024
"""The largest original picture kept with a drawing (the canvas's PNG is a few KB): a bigger one is refused, so that
a row stays small."""
IMAGE_SHAPE = (28, 28)
DATASET = "mnist"  # the dataset the drawings add to: only MNIST's digits are drawn in the room
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IDX_IMAGES = "room-images-idx3-ubyte"
IDX_LABELS = "room-labels-idx1-ubyte"
_WRITE_OPTION = "digit_lab_room_write"  # an execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)
_SQLITE_REASONS = (
    ("readonly", "is read-only: nothing can be saved in it"),
    ("locked", f"is locked by another writer for longer than {BUSY_TIMEOUT_MS // 1000} s"),
    ("unable to open", "cannot be opened: its folder is missing or not accessible"),
    ("not a database", "is not an SQLite database (another kind of file, or a damaged one)"),
    ("malformed", "is damaged"),
)
"""SQLite's messages (a fragment of each) and what they mean, as the end of a sentence about the database."""


class RoomError(DigitLabError):
    """A failure of the room's store; the subclasses say which."""


class InvalidDrawingError(RoomError, ValueError):
    """A drawing the store refuses to keep as given (a label that is not a digit, an image of the wrong shape...)."""


class DrawingNotFoundError(RoomError, LookupError):
    """No drawing with that id (or none of that session's, for taking one back)."""


class RoomRateLimitError(RoomError, RuntimeError):
    """A session saved ROOM_RATE_LIMIT drawings in the last RATE_WINDOW already."""


class RoomUnavailableError(RoomError, RuntimeError):
    """The database cannot be opened, read or written; the message says which and why."""


@dataclass(frozen=True)
class ModelAnswer:
    """What one model answered for a drawing, stored as JSON: ``{"digit": 4, "confidence": 0.93}``."""

    digit: int
    confidence: float


@dataclass(frozen=True)
class RoomRecord:
    """One drawing as read back (its original picture is read on its own, by ``RoomStore.original_png``)."""

    id: str
    session_id: str
    created: datetime  # UTC
    input_kind: InputKind
    label: int
    position: int | None  # the digit's index in a whole number; None for a single digit
    image: np.ndarray = field(compare=False)  # uint8, 28×28, read-only
    answers: dict[str, ModelAnswer]  # model name → its answer
    checkpoints: dict[str, str]  # model name → the weights id it answered with
    status: Status
    dataset: str


@dataclass(frozen=True)
class RoomCounts:
    """How many drawings the room holds, by label (0-9), by input kind and by status (zeros included)."""

    by_label: dict[int, int]
    by_kind: dict[str, int]
    by_status: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


class _UtcDateTime(TypeDecorator[datetime]):
    """A UTC time, stored without its zone (SQLite keeps none) and read back as UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class _Base(DeclarativeBase):
    pass


class RoomDrawing(_Base):
    """A row of ``room_drawings``. The migrations own the schema (its checks included); this maps it."""

    __tablename__ = "room_drawings"
    __table_args__ = (Index("ix_room_drawings_session_created", "session_id", "created"),
                      Index("ix_room_drawings_status", "status"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4, as hex
    session_id: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(_UtcDateTime())
    input_kind: Mapped[InputKind] = mapped_column(String(16))
    label: Mapped[int] = mapped_column(Integer)
    position: Mapped[int | None] = mapped_column(Integer)
    image: Mapped[bytes] = mapped_column(LargeBinary)  # 784 bytes, row by row
    original_png: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)  # read only when asked for
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    checkpoints: Mapped[dict[str, str]] = mapped_column(JSON)
    status: Mapped[Status] = mapped_column(String(16))
    dataset: Mapped[str] = mapped_column(String(16))


def held_for_review(label: int, answers: Iterable[ModelAnswer]) -> bool:
    """Whether a drawing labelled ``label`` waits for a curator before it may train a model: when at least one model
    answered and every model answered another digit with confidence ≥ HOLD_CONFIDENCE. Such a correction is as likely
    a slip or a joke as the models' mistake, so a person looks first; a label that any model agreed with or doubted is
    kept at once."""
    answers = list(answers)
    return bool(answers) and all(answer.digit != label and answer.confidence >= HOLD_CONFIDENCE
                                 for answer in answers)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def open_room(url: str | None = None, *, clock: Callable[[], datetime] = _utc_now) -> RoomStore:
    """The room's store at ``url``, else at $DIGIT_LAB_ROOM_DB, else in runs/room.sqlite (its folder created), with
    its schema brought up to date. ``clock`` gives the UTC time of each drawing (the tests' rate limit sets it)."""
    engine = _create_engine(url or os.environ.get(ROOM_DB_ENV) or _default_url())
    store = RoomStore(engine, clock)
    with store._unavailable_as_error():
        _migrate(engine)
    return store


def _default_url() -> str:
    folder = resolve_runs_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RoomUnavailableError(f"The runs folder {folder}, which holds the room's database, cannot be created "
                                   f"({(error.strerror or 'not writable').lower()}). Make it writable or set "
                                   f"{ROOM_DB_ENV} to another database.") from None
    return f"sqlite:///{folder / ROOM_DB_FILE}"


def _create_engine(url: str) -> Engine:
    try:
        engine = create_engine(url)
    except ArgumentError:
        raise RoomUnavailableError(f"The room's database is given by a URL SQLAlchemy cannot read ({ROOM_DB_ENV}); "
                                   f"write e.g. sqlite:///path/room.sqlite or postgresql+psycopg://user@host/db."
                                   ) from None
    except (NoSuchModuleError, ImportError) as error:
        raise RoomUnavailableError(f"The room's database needs a package that is not installed: {error}.") from None
    if engine.dialect.name == "sqlite":
        _use_wal_and_immediate_writes(engine)
    return engine


def _use_wal_and_immediate_writes(engine: Engine) -> None:
    """Each SQLite connection: WAL (readers never wait for the writer), a busy timeout (a writer waits for another's
    lock instead of failing at once), and transactions begun here rather than by the driver: BEGIN IMMEDIATE for a
    write, so no write fails half-way on a snapshot another process changed meanwhile, plain BEGIN for a read."""

    @event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own BEGIN off: ``begin`` below emits ours
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection: Connection) -> None:
        writes = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def _migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision, writing only when it is behind: opening a current database takes no
    write lock (several servers start at once; a read-only copy opens for reading)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["version_table"] = VERSION_TABLE
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if current != head:
        with engine.execution_options(**{_WRITE_OPTION: True}).begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


def _unavailable_sentence(where: str, error: DBAPIError) -> str:
    detail = str(error.orig).strip().splitlines()[0] if error.orig is not None else type(error).__name__
    reason = next((reason for fragment, reason in _SQLITE_REASONS if fragment in detail.lower()),
                  f"cannot be used ({detail})")
    return f"The room's database {where} {reason}. Fix it, or set {ROOM_DB_ENV} to another database."


class RoomStore:
    """The room's drawings in one database; open it with ``open_room``. One store may serve every thread."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
        self._clock = clock

    @property
    def where(self) -> str:
        """The database, for messages: an SQLite file's path, else its URL without the password."""
        url = self._engine.url
        if url.get_backend_name() == "sqlite" and url.database:
            return url.database
        return url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Close the store's connections (a later call opens new ones)."""
        self._engine.dispose()

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        """The database's failures as a RoomUnavailableError sentence naming the database and the reason. An
        integrity error passes through: it is a bug here, not the database's state."""
        try:
            yield
        except IntegrityError:
            raise
        except DBAPIError as error:
            raise RoomUnavailableError(_unavailable_sentence(self.where, error)) from error
        except CommandError as error:
            raise RoomUnavailableError(f"The room's database {self.where} has a schema this digit-lab does not know "
                                       f"({error}); a newer digit-lab probably wrote it.") from error

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._unavailable_as_error(), Session(self._engine) as db:
            yield db

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with self._unavailable_as_error(), Session(self._writer) as db, db.begin():
            yield db

    def add(self, session_id: str, image: np.ndarray, label: int, input_kind: InputKind, *,
            answers: Mapping[str, ModelAnswer] | None = None, checkpoints: Mapping[str, str] | None = None,
            original_png: bytes | None = None, position: int | None = None) -> str:
        """Keep a drawing, status "held" when ``held_for_review`` says so, else "kept"; returns its id. Refuses an
        invalid drawing (InvalidDrawingError) and, for a visitor's kinds, the session's drawing beyond the rate limit
        (RoomRateLimitError)."""
        answers = dict(answers or {})
        checkpoints = dict(checkpoints or {})
        _check_drawing(session_id, image, label, input_kind, answers, checkpoints, original_png, position)
        created = self._clock()
        drawing_id = uuid.uuid4().hex
        with self._writing() as db:
            if input_kind in VISITOR_KINDS:
                self._check_rate(db, session_id, created)
            db.add(RoomDrawing(
                id=drawing_id, session_id=session_id, created=created, input_kind=input_kind, label=int(label),
                position=position, image=image.tobytes(), original_png=original_png,
                answers={name: {"digit": int(answer.digit), "confidence": float(answer.confidence)}
                         for name, answer in answers.items()},
                checkpoints=checkpoints, status=_status_for(int(label), answers.values()), dataset=DATASET))
        return drawing_id

    @staticmethod
    def _check_rate(db: Session, session_id: str, now: datetime) -> None:
        recent = db.scalar(select(func.count()).select_from(RoomDrawing).where(
            RoomDrawing.session_id == session_id, RoomDrawing.input_kind.in_(VISITOR_KINDS),
            RoomDrawing.created > now - RATE_WINDOW)) or 0
        if recent >= ROOM_RATE_LIMIT:
            raise RoomRateLimitError(f"This session has saved {recent} drawings in the last "
                                     f"{RATE_WINDOW.total_seconds():.0f} s; the room keeps at most {ROOM_RATE_LIMIT} "
                                     f"per session in that time. Wait a moment and save it again.")

    def take_back(self, drawing_id: str, session_id: str) -> None:
        """Remove a drawing at the request of the session that saved it; no other session may."""
        if self._delete_where(RoomDrawing.id == drawing_id, RoomDrawing.session_id == session_id) == 0:
            raise DrawingNotFoundError(f"This session has no drawing {drawing_id!r:.40} to take back.")

    def delete(self, drawing_id: str) -> None:
        """Remove a drawing (a curator's decision)."""
        if self._delete_where(RoomDrawing.id == drawing_id) == 0:
            raise _not_found(drawing_id)

    def delete_session(self, session_id: str) -> int:
        """Remove every drawing of a session (a visitor who asks to be forgotten); how many there were."""
        return self._delete_where(RoomDrawing.session_id == session_id)

    def _delete_where(self, *conditions: ColumnElement[bool]) -> int:
        with self._writing() as db:
            return db.connection().execute(delete(RoomDrawing).where(*conditions)).rowcount

    def relabel(self, drawing_id: str, label: int) -> None:
        """Give a drawing another label. A reviewed drawing stays reviewed (a curator chose); any other is held or
        kept again by ``held_for_review`` on the new label."""
        _check_digit(label, "The label")
        with self._writing() as db:
            drawing = _find(db, drawing_id)
            drawing.label = int(label)
            if drawing.status != "reviewed":
                drawing.status = _status_for(int(label), _answers_of(drawing).values())

    def mark_reviewed(self, drawing_id: str) -> None:
        """A curator looked at the drawing and its label: it may train a model (a held one is released)."""
        with self._writing() as db:
            _find(db, drawing_id).status = "reviewed"

    def get(self, drawing_id: str) -> RoomRecord:
        with self._reading() as db:
            return _record(_find(db, drawing_id))

    def original_png(self, drawing_id: str) -> bytes | None:
        """The PNG of the picture a drawing came from; None when none was kept."""
        with self._reading() as db:
            row = db.execute(select(RoomDrawing.original_png).where(RoomDrawing.id == drawing_id)).first()
        if row is None:
            raise _not_found(drawing_id)
        return row[0]

    def drawings(self, status: Status | None = None, session: str | None = None, label: int | None = None,
                 input_kind: InputKind | None = None) -> list[RoomRecord]:
        """The drawings that match every filter given, oldest first."""
        conditions = [condition for value, condition in (
            (status, RoomDrawing.status == status), (session, RoomDrawing.session_id == session),
            (label, RoomDrawing.label == label), (input_kind, RoomDrawing.input_kind == input_kind),
        ) if value is not None]
        return self._records(*conditions)

    def training_set(self, reviewed_only: bool = True) -> list[RoomRecord]:
        """The drawings a model may train on, oldest first: the reviewed ones, or with ``reviewed_only=False`` the
        kept ones too. Held drawings never are."""
        statuses: tuple[Status, ...] = ("reviewed",) if reviewed_only else ("kept", "reviewed")
        return self._records(RoomDrawing.status.in_(statuses))

    def _records(self, *conditions: ColumnElement[bool]) -> list[RoomRecord]:
        with self._reading() as db:
            rows = db.scalars(select(RoomDrawing).where(*conditions).order_by(RoomDrawing.created, RoomDrawing.id))
            return [_record(row) for row in rows]

    def counts(self) -> RoomCounts:
        with self._reading() as db:
            return RoomCounts(by_label=_tally(db, RoomDrawing.label, range(10)),
                              by_kind=_tally(db, RoomDrawing.input_kind, INPUT_KINDS),
                              by_status=_tally(db, RoomDrawing.status, STATUSES))

    def export_idx(self, folder: str | os.PathLike, reviewed_only: bool = True) -> tuple[Path, Path]:
        """The training set (see ``training_set``) as MNIST's two IDX files in ``folder``; see ``write_idx``."""
        return write_idx(self.training_set(reviewed_only), folder)

    def export_npz(self, path: str | os.PathLike, reviewed_only: bool = True) -> Path:
        """The training set (see ``training_set``) as one NPZ file; see ``write_npz``."""
        return write_npz(self.training_set(reviewed_only), path)


def images_and_labels(records: Sequence[RoomRecord]) -> tuple[np.ndarray, np.ndarray]:
    """(N×28×28, N) uint8 arrays, as MNIST's files hold them (N may be 0)."""
    return (np.array([record.image for record in records], dtype=np.uint8).reshape(-1, *IMAGE_SHAPE),
            np.array([record.label for record in records], dtype=np.uint8))


def write_idx(records: Sequence[RoomRecord], folder: str | os.PathLike) -> tuple[Path, Path]:
    """``records`` in MNIST's own format, IDX_IMAGES and IDX_LABELS in ``folder`` (``data.idx_bytes``), each written
    atomically; so any MNIST reader reads them."""
    folder = Path(folder)
    images, labels = (idx_bytes(array) for array in images_and_labels(records))
    return (atomic_write(folder / IDX_IMAGES, lambda file: file.write(images)),
            atomic_write(folder / IDX_LABELS, lambda file: file.write(labels)))


def write_npz(records: Sequence[RoomRecord], path: str | os.PathLike) -> Path:
    """``records`` as a compressed NPZ file, written atomically: ``images`` (N×28×28 uint8), ``labels`` (uint8),
    ``sessions`` and ``ids`` (fixed-width strings, so ``np.load`` needs no pickle)."""
    images, labels = images_and_labels(records)
    sessions = np.array([record.session_id for record in records], dtype=str)
    ids = np.array([record.id for record in records], dtype=str)
    return atomic_write(path, lambda file: np.savez_compressed(file, images=images, labels=labels, sessions=sessions,
                                                               ids=ids))


def _check_digit(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 <= value <= 9:
        raise InvalidDrawingError(f"{what} must be a digit from 0 to 9, not {value!r:.40}.")


def _check_drawing(session_id: str, image: np.ndarray, label: int, input_kind: str, answers: dict[str, ModelAnswer],
                   checkpoints: dict[str, str], original_png: bytes | None, position: int | None) -> None:
    """Refuse, before anything is written, a drawing that does not fit the table's rules (InvalidDrawingError)."""
    if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
        raise InvalidDrawingError(f"A session id is 1 to 64 letters, digits, '-' or '_', not {session_id!r:.80}.")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != IMAGE_SHAPE:
        described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InvalidDrawingError(f"A drawing's image is the 28×28 uint8 MNIST-style input, not {described}.")
    _check_digit(label, "The label")
    if input_kind not in INPUT_KINDS:
        raise InvalidDrawingError(f"The input kind is one of {', '.join(INPUT_KINDS)}, not {input_kind!r:.40}.")
    if position is not None and (isinstance(position, bool) or not isinstance(position, int) or position < 0):
        raise InvalidDrawingError(f"The position is a digit's index in a number (0 or more), not {position!r:.40}.")
    for name, answer in answers.items():
        if not isinstance(answer, ModelAnswer) or not 0.0 <= answer.confidence <= 1.0:
            raise InvalidDrawingError(f"The answer of {name!r:.40} is not a ModelAnswer with a confidence from 0 to 1.")
        _check_digit(answer.digit, f"The answer of {name!r:.40}")
    if not all(isinstance(name, str) and isinstance(weights, str) for name, weights in checkpoints.items()):
        raise InvalidDrawingError("The checkpoints map each model's name to the id of its weights, both strings.")
    if original_png is not None:
        if not isinstance(original_png, bytes) or not original_png.startswith(PNG_SIGNATURE):
            raise InvalidDrawingError("The original picture must be given as the bytes of a PNG file.")
        if len(original_png) > MAX_ORIGINAL_PNG_BYTES:
            raise InvalidDrawingError(f"The original picture is {len(original_png):,} bytes; the room keeps at most "
                                      f"{MAX_ORIGINAL_PNG_BYTES:,} bytes ({MAX_ORIGINAL_PNG_BYTES // 1024} KiB) of PNG "
                                      f"per drawing.")


def _status_for(label: int, answers: Iterable[ModelAnswer]) -> Status:
    return "held" if held_for_review(label, answers) else "kept"


def _not_found(drawing_id: str) -> DrawingNotFoundError:
    return DrawingNotFoundError(f"The room has no drawing {drawing_id!r:.40}.")


def _find(db: Session, drawing_id: str) -> RoomDrawing:
    drawing = db.get(RoomDrawing, drawing_id)
    if drawing is None:
        raise _not_found(drawing_id)
    return drawing


def _answers_of(drawing: RoomDrawing) -> dict[str, ModelAnswer]:
    return {name: ModelAnswer(int(answer["digit"]), float(answer["confidence"]))
            for name, answer in drawing.answers.items()}


def _record(drawing: RoomDrawing) -> RoomRecord:
    return RoomRecord(
        id=drawing.id, session_id=drawing.session_id, created=drawing.created, input_kind=drawing.input_kind,
        label=drawing.label, position=drawing.position,
        image=np.frombuffer(drawing.image, dtype=np.uint8).reshape(IMAGE_SHAPE), answers=_answers_of(drawing),
        checkpoints=dict(drawing.checkpoints), status=drawing.status, dataset=drawing.dataset)


def _tally(db: Session, column: InstrumentedAttribute[Any], keys: Iterable[Any]) -> dict[Any, int]:
    """How many drawings have each of ``keys`` in ``column`` (0 for a key none has)."""
    counted = {key: count for key, count in db.execute(select(column, func.count()).group_by(column))}
    return {key: counted.get(key, 0) for key in keys}
