"""Atomic file writes: a reader sees the old file or the new one, never half of either; and the storage checks that
let a long job refuse at the start rather than fail at the end.

A write that fails because the folder is read-only or full raises a ``StorageError`` sentence naming the folder and
its free space, instead of the operating system's or torch's wording ("[enforce fail at inline_container.cc:672]
. unexpected pos ..."), and leaves no temporary file behind.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..errors import DigitLabError

NO_ROOM_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
READ_ONLY_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)
# How torch's zip writer reports a write that the disk cut short (it never sets an errno).
TORCH_SHORT_WRITE = ("unexpected pos", "PytorchStreamWriter failed writing")


class StorageError(DigitLabError, OSError):
    """A folder that cannot take the files a job has to write: read-only, missing room, or filled up meanwhile."""


def format_bytes(count: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Free space in ``folder`` (or its nearest existing parent), None when it cannot be found out."""
    folder = Path(folder)
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def _storage_problem(error: BaseException, folder: Path, name: str | None = None) -> StorageError | None:
    """The StorageError that ``error`` (raised while writing ``name`` in ``folder``) amounts to, or None for other
    errors."""
    if isinstance(error, StorageError):
        return error
    short_write = isinstance(error, RuntimeError) and any(text in str(error) for text in TORCH_SHORT_WRITE)
    if short_write or isinstance(error, OSError) and error.errno in NO_ROOM_ERRNOS:
        free = free_bytes(folder)
        room = f"{format_bytes(free)} free" if free is not None else "free space unknown"
        what = f"{name} did not fit ({room} without it; nothing half-written was left)" if name else room
        return StorageError(f"{folder} ran out of space: {what}. Free some space or choose another folder.")
    if isinstance(error, OSError) and error.errno in READ_ONLY_ERRNOS:
        reason = (error.strerror or "not writable").lower()
        what = f"{name} could not be saved there" if name else "nothing can be saved there"
        return StorageError(f"Cannot write in {folder} ({reason}): {what}. Make it writable or choose another "
                            f"folder.")
    return None


def check_room(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Refuse, before a long job starts, when ``folder`` cannot be created or written, or has less than ``needed``
    bytes free; ``what`` says what the room is for, in the message."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # the real test: permissions, read-only mounts, quotas
            pass
    except OSError as error:
        raise _storage_problem(error, folder) or error from None
    free = free_bytes(folder)
    if free is not None and free < needed:
        raise StorageError(f"Not enough room in {folder}: {what} needs about {format_bytes(needed)} there and "
                           f"{format_bytes(free)} is free. Free some space or choose another folder.")


TEMPORARY_SUFFIX = ".tmp"


def _temporary_prefix(path: Path) -> str:
    """How ``atomic_write``'s temporary file for ``path`` starts: hidden, and named after it."""
    return f".{path.name}."


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Write through ``write(file)`` to a temporary file beside ``path``, flush it to disk, then rename it over
    ``path``. A failure (a full disk, Ctrl-C) removes the temporary file and leaves ``path`` as it was; a full or
    read-only folder is a StorageError."""
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=TEMPORARY_SUFFIX, dir=path.parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's private 0600 would hide shipped files from other users
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        problem = _storage_problem(error, path.parent, path.name)
        if problem is not None and problem is not error:
            raise problem from error
        raise
    return path


def remove_leftover_temporaries(path: str | os.PathLike) -> None:
    """Remove the temporary files ``atomic_write`` left beside ``path`` when it was killed outright (a power cut
    between creating one and renaming it). Only a caller that knows no write to ``path`` is under way (a holder of
    the training lock) may call this."""
    path = Path(path)
    for temporary in path.parent.glob(f"{glob.escape(_temporary_prefix(path))}*{TEMPORARY_SUFFIX}"):
        temporary.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, payload: Any, indent: int | None = None) -> Path:
    """``payload`` as JSON, atomically; compact unless ``indent`` is given (human-read results files)."""
    separators = None if indent is not None else (",", ":")
    text = json.dumps(payload, indent=indent, separators=separators) + ("\n" if indent is not None else "")
    return atomic_write(path, lambda file: file.write(text.encode()))


def replace_between_markers(path: str | os.PathLike, start: str, end: str, text: str) -> bool:
    """Put ``text`` between the lines ``start`` and ``end`` of a text file (the README's generated tables), atomically;
    False, and nothing written, when the file lacks the markers."""
    path = Path(path)
    pattern = re.compile(rf"({re.escape(start)}\n)(?:.*?\n)?({re.escape(end)})", re.S)
    content = path.read_text()
    if not pattern.search(content):
        return False
    updated = pattern.sub(lambda match: f"{match[1]}{text}\n{match[2]}", content)
    atomic_write(path, lambda file: file.write(updated.encode()))
    return True
