"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Write through ``write(file)`` to a temporary file beside ``path``, flush it to disk, then rename it over
    ``path``. A failure (a full disk, Ctrl-C) removes the temporary file and leaves ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's private 0600 would hide shipped files from other users
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


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
