"""The room's drawings as training data and as a test: split so that no visitor is on both sides, pictures of digits
imported in bulk, and each model's accuracy on them.

``split_by_session`` puts all of a session's drawings on one side, so a model is tested on visitors it never saw
(one visitor's ten 7s look alike: on both sides they would flatter the score). ``measure_on_room`` reads the room's
drawings with each model, with a Wilson interval: a room holds tens or hundreds of drawings, not MNIST's 10,000, so
how far the accuracy may be off matters as much as the accuracy. ``import_pictures`` reads a folder or
a zip of pictures sorted into folders named by their digit (``0/…png``, ``7/…jpg``), each through the Draw page's
guards for uploads (``uploads.load_uploaded_image``, then ``preprocess.preprocess_drawing``). A zip is checked from
its directory before anything in it is read: at most MAX_IMPORT_ENTRIES entries and MAX_IMPORT_BYTES unpacked, no
entry leaving the zip (``../``, an absolute path).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

import numpy as np
from scipy.stats import binomtest
from torch import nn

from .inference import predict_logits
from .preprocess import EmptyDrawingError, preprocess_drawing
from .store.files import format_bytes
from .store.room_db import (
    MAX_ORIGINAL_PNG_BYTES,
    PNG_SIGNATURE,
    RoomError,
    RoomRecord,
    RoomStore,
    images_and_labels,
)
from .uploads import InvalidImageError, load_uploaded_image

MAX_IMPORT_ENTRIES = 5_000
MAX_IMPORT_BYTES = 200 * 10**6
"""The most files, and bytes once unpacked, that one import reads: a class's worth of drawings is a few MB; more is
a mistake or a zip bomb."""
MAX_PICTURE_BYTES = 25 * 10**6
"""The largest picture imported: the Draw page's own limit for an upload (``maxUploadSize`` in .streamlit)."""
DIGIT_FOLDERS = {str(digit): digit for digit in range(10)}
_READ_ERRORS = (OSError, zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError)
"""What reading one file may raise: a damaged or encrypted zip entry, an unsupported compression, a file gone."""


class ImportRefusedError(RoomError, ValueError):
    """A folder or zip refused as a whole (too many files, too large, a path leaving it, not a zip at all)."""


@dataclass(frozen=True)
class SkippedPicture:
    name: str  # its path in the folder or zip
    reason: str


@dataclass(frozen=True)
class ImportReport:
    added: list[str]  # the ids of the drawings kept
    skipped: list[SkippedPicture]


@dataclass(frozen=True)
class _Entry:
    name: str  # a relative path with forward slashes
    size: int  # unpacked
    read: Callable[[], bytes]


def split_by_session(records: Sequence[RoomRecord], held_out_share: float = 0.25, seed: int = 0,
                     ) -> tuple[list[RoomRecord], list[RoomRecord]]:
    """(train, held out), in the order given, with every session's drawings on one side. A session is held out when a
    hash of ``seed`` and its id falls in the first ``held_out_share`` of the hash's range: about that share of the
    sessions (not of the drawings), and the same side for a session however many others join, so a room that grows
    never moves a visitor across."""
    if not 0.0 <= held_out_share <= 1.0:
        raise ValueError(f"held_out_share is a share from 0 to 1, not {held_out_share}")
    held_out = {record.session_id for record in records if _hash_share(record.session_id, seed) < held_out_share}
    return ([record for record in records if record.session_id not in held_out],
            [record for record in records if record.session_id in held_out])


def _hash_share(session_id: str, seed: int) -> float:
    """Where ``session_id`` falls, from 0 to 1, for ``seed``: the same on every machine and every run."""
    digest = hashlib.blake2b(f"{seed}:{session_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


CONFIDENCE_LEVEL = 0.95


@dataclass(frozen=True)
class RoomScore:
    """One model's reading of the room's drawings: its answer to each, and how many were right."""

    predictions: np.ndarray  # the digit it reads in each drawing, in the order measured
    correct: int
    count: int
    interval: tuple[float, float] | None  # the Wilson interval of its accuracy; None without a drawing

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.count if self.count else None


@dataclass(frozen=True)
class RoomMeasurement:
    """Every model's reading of the same drawings, and their labels."""

    labels: np.ndarray  # uint8, one per drawing measured
    scores: dict[str, RoomScore]  # model name → its score

    def confusion(self, name: str) -> list[list[int]]:
        """``name``'s 10×10 confusion matrix on the drawings, [label][its answer], as an evaluation stores one."""
        matrix = np.zeros((10, 10), dtype=np.int64)
        np.add.at(matrix, (self.labels.astype(np.int64), self.scores[name].predictions), 1)
        return matrix.tolist()

    def misread_by(self) -> np.ndarray:
        """How many of the models misread each drawing: the drawings most of them get wrong show where they all
        fail."""
        wrong = np.zeros(len(self.labels), dtype=np.int64)
        for score in self.scores.values():
            wrong += score.predictions != self.labels
        return wrong


def wilson_interval(correct: int, count: int, confidence: float = CONFIDENCE_LEVEL) -> tuple[float, float] | None:
    """The Wilson score interval of a share of ``correct`` in ``count``: unlike the normal approximation it stays in
    [0, 1] and holds for the few drawings a room starts with, 10 of 10 included. None for no drawing at all."""
    if count == 0:
        return None
    interval = binomtest(correct, count).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def measure_on_room(networks: Mapping[str, nn.Module], records: Sequence[RoomRecord],
                    confidence: float = CONFIDENCE_LEVEL) -> RoomMeasurement:
    """Each network's (by name) answers to ``records``' 28×28 images, scored against their labels with a Wilson
    interval. Give it the drawings whose labels are trusted, ``RoomStore.training_set(reviewed_only=False)``: a held
    correction is as likely a slip as the models' mistake, so it does not score them until a curator has looked."""
    images, labels = images_and_labels(records)
    scores = {}
    for name, network in networks.items():
        predictions = (predict_logits(network, images).argmax(axis=1) if len(records) else
                       np.zeros(0, dtype=np.int64))
        correct = int((predictions == labels).sum())
        scores[name] = RoomScore(predictions, correct, len(records), wilson_interval(correct, len(records), confidence))
    return RoomMeasurement(labels, scores)


def import_pictures(store: RoomStore, source: str | os.PathLike, session_id: str) -> ImportReport:
    """Keep every picture of a folder or zip (``source``) whose folder names its digit, as drawings of kind
    "import" under ``session_id``; a picture the Draw page would refuse (unreadable, no digit in it) is skipped with
    the reason. A whole source beyond the limits, or with a path leaving it, is an ImportRefusedError, and nothing
    of it is kept."""
    source = Path(source)
    if source.is_dir():
        return _import(store, _folder_entries(source), session_id)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as error:
        raise ImportRefusedError(f"{source} is neither a folder nor a zip file that can be read ({error}).") from None
    with archive:
        return _import(store, _zip_entries(archive, source), session_id)


def _folder_entries(folder: Path) -> list[_Entry]:
    """The folder's files, once they pass the limits and none of them links outside it; nothing read yet."""
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    entries = [_Entry(path.relative_to(folder).as_posix(), path.stat().st_size, path.read_bytes) for path in files]
    _check_limits(folder, len(entries), sum(entry.size for entry in entries))
    root = folder.resolve()
    for path in files:
        if not path.resolve().is_relative_to(root):
            raise ImportRefusedError(f"{path} links outside {folder}; an import reads only what is inside it.")
    return entries


def _zip_entries(archive: zipfile.ZipFile, source: Path) -> list[_Entry]:
    """The zip's files, once its directory passes the limits and no entry's path leaves it; nothing read yet."""
    entries = archive.infolist()
    _check_limits(source, len(entries), sum(entry.file_size for entry in entries))
    for entry in entries:
        if _leaves_the_zip(entry.filename):
            raise ImportRefusedError(f"{source.name} holds an entry that leaves it ({entry.filename!r:.80}); it was "
                                     f"not read.")
    return [_Entry(entry.filename, entry.file_size, partial(archive.read, entry))
            for entry in entries if not entry.is_dir()]


def _leaves_the_zip(name: str) -> bool:
    """Whether an entry's path would land outside the folder it is unpacked in: absolute, on a drive, or with ``..``."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return bool(parts) and (parts[0] == "/" or ":" in parts[0]) or ".." in parts


def _check_limits(source: Path, count: int, size: int) -> None:
    if count > MAX_IMPORT_ENTRIES:
        raise ImportRefusedError(f"{source.name} holds {count:,} entries; an import reads at most "
                                 f"{MAX_IMPORT_ENTRIES:,}. Split it.")
    if size > MAX_IMPORT_BYTES:
        raise ImportRefusedError(f"{source.name} holds {format_bytes(size)} once unpacked; an import reads at most "
                                 f"{format_bytes(MAX_IMPORT_BYTES)}. Split it.")


def _import(store: RoomStore, entries: list[_Entry], session_id: str) -> ImportReport:
    added: list[str] = []
    skipped: list[SkippedPicture] = []
    for entry in entries:
        label = DIGIT_FOLDERS.get(PurePosixPath(entry.name).parent.name)
        if label is None:
            skipped.append(SkippedPicture(entry.name, "not in a folder named by its digit (0 to 9)"))
            continue
        if entry.size > MAX_PICTURE_BYTES:
            skipped.append(SkippedPicture(entry.name, f"{format_bytes(entry.size)}, more than the Draw page takes "
                                                      f"({format_bytes(MAX_PICTURE_BYTES)})"))
            continue
        try:
            data = entry.read()
        except _READ_ERRORS as error:
            skipped.append(SkippedPicture(entry.name, f"could not be read ({error})"))
            continue
        try:
            image = preprocess_drawing(load_uploaded_image(data))
        except (InvalidImageError, EmptyDrawingError) as error:
            skipped.append(SkippedPicture(entry.name, str(error)))
            continue
        original = data if data.startswith(PNG_SIGNATURE) and len(data) <= MAX_ORIGINAL_PNG_BYTES else None
        added.append(store.add(session_id, image, label, "import", original_png=original))
    return ImportReport(added, skipped)
