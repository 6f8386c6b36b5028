"""Stopping a training cleanly on a signal. SIGTERM and SIGINT only set a flag that the training loop checks between
batches: the epoch in progress is dropped and the finished ones are saved, instead of the process dying mid-step
(torch aborts with "terminate called without an active exception" when the interpreter exits under its threads).

The command line lets a second Ctrl-C abort at once (the partial file then stays for ``digit-lab recover``); the
dashboard's training process treats every signal as a request to stop, since the server and the terminal may both
send one when the server is stopped.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from .loop import CancelFlag

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """A cancel flag for ``train``: set by ``set``, by a signal (within ``stop_on_signals``), or by any flag in
    ``also`` (the worker's cancel event)."""

    def __init__(self, *also: CancelFlag) -> None:
        self.reason: str | None = None
        self._also = also

    def set(self, reason: str = "cancelled") -> None:
        if self.reason is None:
            self.reason = reason

    def is_set(self) -> bool:
        if self.reason is None and any(flag.is_set() for flag in self._also):
            self.reason = "cancelled"
        return self.reason is not None


@contextlib.contextmanager
def stop_on_signals(stop: StopRequest, second_interrupt_aborts: bool) -> Iterator[StopRequest]:
    """Within the block, SIGTERM and SIGINT set ``stop``; with ``second_interrupt_aborts``, a SIGINT after the flag
    is set raises KeyboardInterrupt. The main thread only (Python's rule for signal handlers)."""

    def handle(number: int, frame) -> None:
        if number == signal.SIGINT and second_interrupt_aborts and stop.reason is not None:
            raise KeyboardInterrupt
        stop.set(f"stopped by {signal.Signals(number).name}")

    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
