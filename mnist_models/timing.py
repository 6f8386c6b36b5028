"""The one way latency samples become figures: median and 95th percentile in milliseconds.

The evaluation's saved latency, the dashboard and every benchmark use it, so two tables never disagree because
they summarised the same kind of samples differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Percentiles:
    """Median and 95th percentile (linear interpolation between samples) of timings in milliseconds."""

    p50_ms: float
    p95_ms: float

    def to_dict(self) -> dict[str, float]:
        return {"p50_ms": self.p50_ms, "p95_ms": self.p95_ms}


def percentiles(samples_ms: Sequence[float]) -> Percentiles:
    """Summarise timing samples (milliseconds); at least one sample."""
    if len(samples_ms) == 0:
        raise ValueError("percentiles of no samples")
    return Percentiles(round(float(np.percentile(samples_ms, 50)), 4), round(float(np.percentile(samples_ms, 95)), 4))
