"""One training job at a time on this machine, whoever starts it (the dashboard's worker or the command line).

An exclusive ``flock`` on a lock file: the kernel drops it when its holder exits, so a crash never leaves it stuck.
The lock belongs to the open file, not to a process: the dashboard's training process inherits the server's
descriptor, and the lock holds until both have closed it.
"""

from __future__ import annotations

import fcntl
import os
from typing import TextIO

from ..errors import DigitLabError
from ..paths import resolve_training_lock


class TrainingBusy(DigitLabError, RuntimeError):
    """Another process (or worker) holds the training lock; the message names it."""


def acquire_training_lock(holder: str) -> TextIO:
    """Take the lock without waiting, for ``holder`` (named to whoever is refused); it is held until the returned
    file is closed. TrainingBusy when it is taken."""
    path = resolve_training_lock()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise TrainingBusy(f"Another digit-lab training job ({holder}) is running on this machine; one runs at a "
                           f"time. Try again when it has finished.") from None
    lock.truncate(0)
    lock.write(f"{holder}, pid {os.getpid()}")
    lock.flush()
    return lock


def training_lock_holder() -> str | None:
    """Who holds the training lock now, as it named itself; None when nobody does."""
    try:
        lock = open(resolve_training_lock())
    except FileNotFoundError:
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return lock.read().strip() or "another process"
        fcntl.flock(lock, fcntl.LOCK_UN)
        return None
