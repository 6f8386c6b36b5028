"""Server-side time of a drawing's answer, for the load and latency benchmarks appended to a log file.

The browser cannot see how long the server worked on a drawing (its figure includes the network, the canvas and its
own rendering), so the server measures its part itself (the Draw page: from the drawing's arrival to the answers).
"""

from __future__ import annotations

import json
import os
import time

TIMING_LOG_ENV = "DIGIT_LAB_TIMING_LOG"
"""When set, a file each measured run appends one JSON line to ({"event", "ms", "time"}); unset, nothing is written."""


def record(event: str, milliseconds: float) -> None:
    """Append one line to the timing log; one short write in append mode, so concurrent sessions do not interleave."""
    path = os.environ.get(TIMING_LOG_ENV)
    if path:
        line = json.dumps({"event": event, "ms": round(milliseconds, 2), "time": time.time()}) + "\n"
        with open(path, "a", encoding="utf-8") as log:
            log.write(line)
