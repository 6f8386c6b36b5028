"""The room's drawings in the dashboard: the store, opened once per database and server process; the visitor's
session id; saying what a drawing was, under the Draw page's answers; and the Room page's tables, gallery and
curation.

A visitor's session is a random id kept in the session's state (``secrets.token_urlsafe``): it lets the visitor take
back what they saved and a curator forget a whole session, and it says nothing about who drew. Curation needs a
passphrase (PASSPHRASE_ENV, or PASSPHRASE_SECRET in Streamlit's secrets); with none configured it is off. A database
that cannot be used is a sentence on the page, never an exception.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import math
import os
import secrets
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from mnist_models.paths import ROOM_DB_ENV, resolve_runs_dir
from mnist_models.room import RoomMeasurement, import_pictures, measure_on_room
from mnist_models.serving.catalog import CatalogEntry, Prediction, catalog_signature
from mnist_models.store.room_db import (
    INPUT_KINDS,
    MAX_ORIGINAL_PNG_BYTES,
    STATUSES,
    DrawingNotFoundError,
    InputKind,
    ModelAnswer,
    RoomError,
    RoomRecord,
    RoomStore,
    held_for_review,
    open_room,
    write_idx,
    write_npz,
)

from .handoff import open_drawing
from .text import ordinal
from .widgets import enlarge

PASSPHRASE_ENV = "DIGIT_LAB_CURATOR_PASSPHRASE"
PASSPHRASE_SECRET = "curator_passphrase"  # its name in .streamlit/secrets.toml
MAX_FAILED_ATTEMPTS = 5
ATTEMPT_WINDOW_S = 300
"""A session that gave MAX_FAILED_ATTEMPTS wrong passphrases within ATTEMPT_WINDOW_S waits until the oldest of them
is that old: a person mistyping is barely slowed, a script guessing is."""
MISREAD_SHOWN = 24  # the gallery's drawings, most models wrong first

SESSION_KEY = "room_session"
KEPT_KEY = "room_kept"  # the drawing this session kept last (_Kept), for "Take back"
NOTE_KEY = "room_note"  # (fingerprint, level, sentence): what the last save or take-back said about that drawing
IT_WAS_KEY = "room_it_was"
NUMBER_WAS_KEY = "room_number_was"
PASSPHRASE_KEY = "room_passphrase"
CURATOR_KEY = "room_curator"  # True once this session gave the passphrase
FAILED_ATTEMPTS_KEY = "room_failed_attempts"  # the monotonic times of this session's wrong passphrases
CURATOR_NOTE_KEY = "room_curator_note"  # (level, sentence): what the last passphrase or curation action said


@st.cache_resource(show_spinner=False)
def _store(url: str | None, runs_dir: str) -> RoomStore:
    """One store per database and process, shared by every session (its engine pools the connections).
    ``runs_dir`` is only a cache key: the default database lives there."""
    return open_room(url)


def room_store() -> RoomStore:
    """The room's store ($DIGIT_LAB_ROOM_DB, else runs/room.sqlite). A RoomUnavailableError says why it cannot be
    used; a failed open is not cached, so the next run tries again (a folder created, a lock released)."""
    return _store(os.environ.get(ROOM_DB_ENV) or None, str(resolve_runs_dir()))


def session_id() -> str:
    """This visitor's random id in the room: what lets them take back their own drawings, and nothing more."""
    return st.session_state.setdefault(SESSION_KEY, secrets.token_urlsafe(16))


@contextmanager
def room_errors_said(doing: str) -> Iterator[None]:
    """Run a block that uses the room's store: a RoomError ends the block and is said in one sentence instead."""
    try:
        yield
    except RoomError as error:
        st.error(f"{doing}: {error}", icon=":material/database:")


def bounded_png(picture: np.ndarray, limit: int = MAX_ORIGINAL_PNG_BYTES) -> bytes | None:
    """``picture`` (uint8 gray, gray+alpha, RGB or RGBA) as PNG, halved until it fits in ``limit`` bytes (the store's
    bound: a phone photo is megabytes); None when not even a 28 px one fits."""
    image = Image.fromarray(np.asarray(picture, dtype=np.uint8))
    while True:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        if buffer.tell() <= limit:
            return buffer.getvalue()
        if min(image.size) <= 28:
            return None
        image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)


def weights_ids(entries: list[CatalogEntry]) -> dict[str, str]:
    """Model name → the id of the weights it answers with, for the models that have one."""
    return {entry.name: entry.meta.weights_id for entry in entries
            if entry.meta is not None and entry.meta.weights_id is not None}


def _with_article(digits: str) -> str:
    """The digits with their article, as said aloud: a 7, an 8."""
    return f"{'an' if digits == '8' else 'a'} {digits}"


@dataclass(frozen=True)
class Shown:
    """What the models were shown and answered: one digit, or a number's digits left to right."""

    digits: tuple[np.ndarray, ...]  # each 28×28 uint8, as the models read it
    answers: tuple[dict[str, ModelAnswer], ...]  # for each digit: model name → its answer
    checkpoints: dict[str, str]  # model name → the weights it answered with
    picture: np.ndarray  # the canvas or the photo, as given
    input_kind: InputKind
    is_number: bool = False

    @property
    def fingerprint(self) -> str:
        """Which drawing this is: a new stroke or picture is a new one to say something about."""
        digest = hashlib.blake2b(digest_size=12)
        for digit in self.digits:
            digest.update(digit.tobytes())
        return digest.hexdigest()

    @property
    def majority(self) -> str:
        """The models' majority answer, digit by digit (on a tie, the digit answered first)."""
        return "".join(str(Counter(answer.digit for answer in answers.values()).most_common(1)[0][0])
                       for answers in self.answers)


def shown_digit(digit: np.ndarray, picture: np.ndarray, predictions: list[Prediction], entries: list[CatalogEntry],
                input_kind: InputKind) -> Shown:
    """One digit (the 28×28 the models read) from ``picture`` and the models' ``predictions`` of it."""
    answers = {prediction.name: ModelAnswer(prediction.digit, prediction.confidence) for prediction in predictions}
    return Shown((digit,), (answers,), weights_ids(entries), picture, input_kind)


@dataclass(frozen=True)
class _Kept:
    fingerprint: str
    ids: tuple[str, ...]
    sentence: str
    held: bool


def _note(fingerprint: str, level: str, sentence: str) -> None:
    st.session_state[NOTE_KEY] = (fingerprint, level, sentence)


def _sure_of(answers: dict[str, ModelAnswer]) -> str:
    return " or ".join(_with_article(str(digit)) for digit in sorted({answer.digit for answer in answers.values()}))


def _kept_sentence(shown: Shown, said: str, held: list[int]) -> str:
    if not shown.is_number:
        return (f"Kept for a curator to check, since every model was sure it was {_sure_of(shown.answers[0])}."
                if held else f"Kept as {_with_article(said)} (thank you).")
    return f"Kept as {said} (thank you)." + "".join(
        f" The {ordinal(position + 1)} digit is kept for a curator to check, since every model was sure it was "
        f"{_sure_of(shown.answers[position])}." for position in held)


def _keep(shown: Shown, said: str) -> None:
    """Keep ``shown`` in the room as ``said`` (one digit per digit shown): all of a number's digits or none of them.
    Remembers it for "Take back", or the sentence saying why it was not kept."""
    session = session_id()
    ids: list[str] = []
    try:
        store = room_store()
        original = bounded_png(shown.picture)
        for position, (digit, answers, label) in enumerate(zip(shown.digits, shown.answers, said, strict=True)):
            ids.append(store.add(session, digit, int(label), shown.input_kind, answers=answers,
                                 checkpoints=shown.checkpoints, original_png=original,
                                 position=position if shown.is_number else None))
    except RoomError as error:
        _take_back_quietly(ids, session)
        _note(shown.fingerprint, "warning", f"Not kept: {error}")
        return
    held = [position for position, (label, answers) in enumerate(zip(said, shown.answers, strict=True))
            if held_for_review(int(label), answers.values())]
    st.session_state[KEPT_KEY] = _Kept(shown.fingerprint, tuple(ids), _kept_sentence(shown, said, held), bool(held))
    st.session_state.pop(NOTE_KEY, None)


def _take_back_quietly(ids: list[str], session: str) -> None:
    """Undo the digits of a number kept before one failed; the failure is what the visitor is told about."""
    for drawing_id in ids:
        try:
            room_store().take_back(drawing_id, session)
        except RoomError:
            return


def _keep_chosen(shown: Shown) -> None:
    digit = st.session_state.get(IT_WAS_KEY)
    if digit is not None:
        _keep(shown, str(digit))
        st.session_state[IT_WAS_KEY] = None


def _keep_number(shown: Shown) -> None:
    typed = "".join(st.session_state.get(NUMBER_WAS_KEY, "").split())
    if not typed:
        return
    count = len(shown.digits)
    if not (typed.isascii() and typed.isdigit() and len(typed) == count):
        _note(shown.fingerprint, "warning", f"Type the {count} digit{'s' if count != 1 else ''} found, left to "
                                            f"right (e.g. {shown.majority}); {typed[:20]!r} is not that.")
        return
    _keep(shown, typed)
    st.session_state[NUMBER_WAS_KEY] = ""


def _take_back(kept: _Kept) -> None:
    session = session_id()
    try:
        for drawing_id in kept.ids:
            try:
                room_store().take_back(drawing_id, session)
            except DrawingNotFoundError:  # a curator deleted it meanwhile: gone either way
                continue
    except RoomError as error:
        _note(kept.fingerprint, "warning", f"Not taken back: {error}")
        return
    st.session_state[KEPT_KEY] = None
    _note(kept.fingerprint, "info", "Taken back: the room no longer keeps it.")


def say_what_it_was(shown: Shown) -> None:
    """Under the models' answers: "Right" (their majority answer) or "It was a …" for a digit, the digits typed for
    a number; once kept, a thank-you and "Take back"."""
    fingerprint = shown.fingerprint
    note = st.session_state.get(NOTE_KEY)
    if note is not None and note[0] == fingerprint:
        (st.warning if note[1] == "warning" else st.info)(note[2], icon=":material/database:")
    kept = st.session_state.get(KEPT_KEY)
    if kept is not None and kept.fingerprint == fingerprint:
        (st.info if kept.held else st.success)(kept.sentence, icon=":material/volunteer_activism:")
        st.button("Take back", key="room_take_back", on_click=_take_back, args=(kept,), icon=":material/undo:",
                  help="Remove it from the room's drawings (only this session can)")
        return
    help_text = ("Keeps the digit, your label and the models' answers in the room's drawings, to test and train "
                 "the models on; nothing about you is kept")
    if shown.is_number:
        st.text_input("It was …", key=NUMBER_WAS_KEY, on_change=_keep_number, args=(shown,),
                      placeholder=f"the {len(shown.digits)} digits, e.g. {shown.majority}", help=help_text)
        return
    right, it_was = st.columns([1, 3], vertical_alignment="bottom")
    right.button(f"Right: {_with_article(shown.majority)}", key="room_right", on_click=_keep,
                 args=(shown, shown.majority), icon=":material/check:", help=help_text)
    with it_was:
        st.segmented_control("It was …", list(range(10)), key=IT_WAS_KEY, on_change=_keep_chosen, args=(shown,),
                             help=help_text)


@st.cache_data(show_spinner="Reading the room's drawings with every model…", max_entries=4)
def _measured(signature: tuple, names: tuple[str, ...], drawings: tuple[tuple[str, int], ...],
              _entries: list[CatalogEntry], _records: list[RoomRecord]) -> RoomMeasurement:
    return measure_on_room({entry.name: entry.network for entry in _entries if entry.network is not None},
                           _records)


def measured(entries: list[CatalogEntry], records: list[RoomRecord]) -> RoomMeasurement:
    """``measure_on_room`` for the available ``entries``, computed again only when a model or a drawing (its label
    included) changes."""
    available = [entry for entry in entries if entry.available]
    return _measured(catalog_signature(), tuple(entry.name for entry in available),
                     tuple((record.id, record.label) for record in records), available, records)


def counts_frame(records: list[RoomRecord]) -> pd.DataFrame:
    """Drawings by digit (rows "0" to "9") and input kind (columns), zeros included."""
    frame = pd.DataFrame(0, index=pd.Index([str(digit) for digit in range(10)], name="digit"),
                         columns=list(INPUT_KINDS))
    for (label, kind), count in Counter((str(record.label), record.input_kind) for record in records).items():
        frame.loc[label, kind] = count
    return frame


def accuracy_frame(measurement: RoomMeasurement, titles: dict[str, str]) -> pd.DataFrame:
    """Each model's accuracy on the drawings with its 95% Wilson interval."""
    return pd.DataFrame([{"model": titles[name], "accuracy": score.accuracy,
                          "95% from": score.interval[0] if score.interval else None,
                          "95% to": score.interval[1] if score.interval else None, "drawings": score.count}
                         for name, score in measurement.scores.items()])


def accuracy_by_day(records: list[RoomRecord], measurement: RoomMeasurement, titles: dict[str, str]) -> pd.DataFrame:
    """Each model's accuracy (columns) on each day's drawings (rows, UTC; a day without drawings is empty)."""
    right = pd.DataFrame({titles[name]: score.predictions == measurement.labels
                          for name, score in measurement.scores.items()},
                         index=pd.DatetimeIndex([record.created for record in records], name="day (UTC)"))
    return right.resample("D").mean()


def misread_gallery(records: list[RoomRecord], measurement: RoomMeasurement, titles: dict[str, str]) -> None:
    """The drawings most of the models misread, the most misread first, each with every model's answer; one of them
    opens in Explain."""
    wrong = measurement.misread_by()
    models = len(measurement.scores)
    shown = [int(index) for index in np.argsort(-wrong, kind="stable") if 2 * wrong[index] > models][:MISREAD_SHOWN]
    if not shown:
        st.write("No drawing is misread by most of the models.")
        return
    answers = [" · ".join(f"{titles[name]} {score.predictions[index]}" for name, score in measurement.scores.items())
               for index in shown]
    st.image([enlarge(records[index].image, 84) for index in shown],
             caption=[f"{ordinal(place + 1)}: label {records[index].label}, {wrong[index]} of {models} wrong "
                      f"({answer})" for place, (index, answer) in enumerate(zip(shown, answers, strict=True))])
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    picked = left.selectbox("Why did they misread it? Pick a drawing", range(len(shown)),
                            format_func=lambda place: f"{ordinal(place + 1)} (label {records[shown[place]].label})",
                            key="room_misread_pick")
    explain = right.button("Open in Explain", icon=":material/psychology:", key="room_misread_explain")
    if explain and picked is not None:
        open_drawing(records[shown[picked]].image.copy())


def curator_passphrase() -> str | None:
    """The curators' passphrase: PASSPHRASE_ENV, else PASSPHRASE_SECRET in Streamlit's secrets; None: curation off."""
    if configured := os.environ.get(PASSPHRASE_ENV):
        return configured
    try:
        secret = st.secrets.get(PASSPHRASE_SECRET)
    except FileNotFoundError:  # no secrets file at all (Streamlit's StreamlitSecretNotFoundError)
        return None
    return str(secret) if secret else None


def _curator_note(level: str, sentence: str) -> None:
    st.session_state[CURATOR_NOTE_KEY] = (level, sentence)


def _try_passphrase(passphrase: str) -> None:
    """Unlock curation for this session when the typed passphrase is right, unless this session gave too many wrong
    ones lately; say which."""
    typed = st.session_state.get(PASSPHRASE_KEY, "")
    st.session_state[PASSPHRASE_KEY] = ""
    now = time.monotonic()
    failures = [moment for moment in st.session_state.get(FAILED_ATTEMPTS_KEY, []) if now - moment < ATTEMPT_WINDOW_S]
    if len(failures) >= MAX_FAILED_ATTEMPTS:
        wait = math.ceil(ATTEMPT_WINDOW_S - (now - failures[0]))
        _curator_note("error", f"Too many wrong passphrases: try again in {wait} s.")
    elif hmac.compare_digest(typed.encode(), passphrase.encode()):
        st.session_state[CURATOR_KEY] = True
        failures = []
        st.session_state.pop(CURATOR_NOTE_KEY, None)
    else:
        failures.append(now)
        left = MAX_FAILED_ATTEMPTS - len(failures)
        _curator_note("error", "Wrong passphrase. " + (
            f"{left} more tr{'y' if left == 1 else 'ies'} in the next {ATTEMPT_WINDOW_S // 60} minutes." if left else
            f"That was the {ordinal(MAX_FAILED_ATTEMPTS)} wrong one in {ATTEMPT_WINDOW_S // 60} minutes: wait "
            f"{ATTEMPT_WINDOW_S} s before the next try."))
    st.session_state[FAILED_ATTEMPTS_KEY] = failures


def curator_gate() -> bool:
    """Whether this session may curate: says how to turn curation on when no passphrase is configured, and asks for
    the passphrase until it is given."""
    passphrase = curator_passphrase()
    note = st.session_state.pop(CURATOR_NOTE_KEY, None)
    if note is not None:
        (st.error if note[0] == "error" else st.success)(note[1], icon=":material/key:")
    if passphrase is None:
        st.info(f"Curation is off: no curator passphrase is configured. Set `{PASSPHRASE_ENV}` before starting the "
                f"dashboard (or `{PASSPHRASE_SECRET}` in `.streamlit/secrets.toml`) to turn it on.",
                icon=":material/lock:")
        return False
    if st.session_state.get(CURATOR_KEY):
        return True
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.text_input("Curator passphrase", type="password", key=PASSPHRASE_KEY)
    right.button("Unlock curation", key="room_unlock", on_click=_try_passphrase, args=(passphrase,),
                 icon=":material/lock_open:")
    return False


def _curate(action: Callable[[str], str], argument: str) -> None:
    """Run a curator's action on the store, and say what became of it."""
    try:
        outcome = action(argument)
    except RoomError as error:
        _curator_note("error", str(error))
    else:
        _curator_note("success", outcome)


def _relabel(drawing_id: str) -> str:
    label = st.session_state[f"room_relabel_{drawing_id}"]
    room_store().relabel(drawing_id, int(label))
    return f"Relabelled as {_with_article(str(label))}."


def _mark_reviewed(drawing_id: str) -> str:
    room_store().mark_reviewed(drawing_id)
    return "Marked reviewed: it may train a model."


def _delete(drawing_id: str) -> str:
    room_store().delete(drawing_id)
    return "Deleted."


def _delete_session(session: str) -> str:
    count = room_store().delete_session(session)
    return f"Deleted the session's {count} drawing{'s' if count != 1 else ''}."


def _describe(record: RoomRecord) -> str:
    return (f"{record.label} · {record.status} · {record.input_kind} · {record.created:%Y-%m-%d %H:%M} · "
            f"{record.id[:8]}")


def drawing_curation(store: RoomStore, records: list[RoomRecord], titles: dict[str, str]) -> None:
    """Pick a drawing (by status) and relabel it, mark it reviewed (a held one is released), delete it, or delete
    its whole session."""
    counts = {"all": len(records), **Counter(record.status for record in records)}
    status = st.segmented_control("Status", ["all", *STATUSES], default="all", key="room_curate_status",
                                  format_func=lambda name: f"{name} ({counts.get(name, 0)})")
    chosen = [record for record in records if status in (None, "all", record.status)]
    if not chosen:
        st.write("No drawing with that status.")
        return
    by_id = {record.id: record for record in chosen}
    picked = st.selectbox("Drawing (label · status · input · saved · id)", list(by_id), key="room_curate_pick",
                          format_func=lambda drawing_id: _describe(by_id[drawing_id]))
    record = by_id.get(str(picked), chosen[0])
    original = store.original_png(record.id)
    st.image([enlarge(record.image, 112)] + ([original] if original is not None else []),
             caption=["the 28×28 the models read"] + (["as drawn or uploaded"] if original is not None else []),
             width=140)
    answers = " · ".join(f"{titles.get(name, name)} {answer.digit} ({answer.confidence:.0%})"
                         for name, answer in record.answers.items())
    st.caption(f"Answers when saved: {answers or 'none'}. Session `{record.session_id}`"
               + (f", {ordinal(record.position + 1)} digit of a number." if record.position is not None else "."))
    label_column, relabel, review, delete, forget = st.columns([2, 1, 1, 1, 1], vertical_alignment="bottom")
    label_column.selectbox("Label", range(10), index=record.label, key=f"room_relabel_{record.id}")
    relabel.button("Relabel", key="room_relabel", on_click=_curate, args=(_relabel, record.id))
    review.button("Mark reviewed", key="room_review", on_click=_curate, args=(_mark_reviewed, record.id),
                  disabled=record.status == "reviewed")
    delete.button("Delete", key="room_delete", on_click=_curate, args=(_delete, record.id))
    session_count = sum(other.session_id == record.session_id for other in records)
    forget.button(f"Delete its session ({session_count})", key="room_delete_session", on_click=_curate,
                  args=(_delete_session, record.session_id), help="Every drawing of the session that saved this one "
                                                                   "(a visitor who asks to be forgotten)")


def export_files(records: list[RoomRecord]) -> tuple[bytes, bytes]:
    """``records`` as a zip of MNIST's two IDX files, and as an NPZ file (see ``room_db.write_idx``, ``write_npz``)."""
    with tempfile.TemporaryDirectory() as folder:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in write_idx(records, folder):
                zipped.write(path, path.name)
        npz = write_npz(records, Path(folder) / "room.npz").read_bytes()
    return archive.getvalue(), npz


def export_buttons(store: RoomStore) -> None:
    """The training set for download, as IDX (zipped) and as NPZ."""
    reviewed_only = st.toggle("Reviewed drawings only", value=True, key="room_export_reviewed",
                              help="Off: the kept drawings too. Held ones are never exported.")
    records = store.training_set(reviewed_only)
    idx_zip, npz = export_files(records)
    st.caption(f"{len(records)} drawing{'s' if len(records) != 1 else ''} to export.")
    left, right = st.columns(2)
    left.download_button("Download IDX (zip)", idx_zip, "room-idx.zip", "application/zip", key="room_export_idx",
                         icon=":material/download:")
    right.download_button("Download NPZ", npz, "room.npz", "application/octet-stream", key="room_export_npz",
                          icon=":material/download:")


def import_form(store: RoomStore) -> None:
    """A zip of pictures in folders named by their digit, kept as drawings of kind "import"; what was skipped and
    why."""
    upload = st.file_uploader("A zip of labelled pictures: folders 0 to 9, each holding pictures of that digit",
                              type=["zip"], key="room_import_upload")
    if upload is None or not st.button("Import", key="room_import", icon=":material/upload:"):
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pictures.zip"
        path.write_bytes(upload.getvalue())
        report = import_pictures(store, path, f"import-{secrets.token_urlsafe(8)}")
    (st.success if report.added else st.warning)(
        f"Imported {len(report.added)} picture{'s' if len(report.added) != 1 else ''}; skipped "
        f"{len(report.skipped)}.", icon=":material/upload:")
    if report.skipped:
        st.dataframe([{"file": skipped.name, "why": skipped.reason} for skipped in report.skipped], hide_index=True)
