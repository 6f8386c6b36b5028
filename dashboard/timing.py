"""Server-side time of a page's run, shown to the visitor and, for the load benchmark, appended to a log file.

The browser cannot see how long the server worked on a drawing (its figure includes the network, the canvas and its
own rendering), so the server measures its part itself: from the start of the script run (app.py) to the answers.
"""

from __future__ import annotations

import json
import os
import time

import streamlit as st

RUN_STARTED_KEY = "run_started"
TIMING_LOG_ENV = "DIGIT_LAB_TIMING_LOG"
"""When set, a file each measured run appends one JSON line to ({"event", "ms", "time"}); unset, nothing is written."""


def mark_run_start() -> None:
    st.session_state[RUN_STARTED_KEY] = time.perf_counter()


def run_elapsed_ms() -> float:
    return (time.perf_counter() - st.session_state.get(RUN_STARTED_KEY, time.perf_counter())) * 1000


def record(event: str, milliseconds: float) -> None:
    """Append one line to the timing log; one short write in append mode, so concurrent sessions do not interleave."""
    path = os.environ.get(TIMING_LOG_ENV)
    if path:
        line = json.dumps({"event": event, "ms": round(milliseconds, 2), "time": time.time()}) + "\n"
        with open(path, "a", encoding="utf-8") as log:
            log.write(line)
