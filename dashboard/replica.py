"""Several dashboard processes behind one proxy (scripts/serve_replicas.sh): which one trains, and which one this is.

A training's live progress lives in the process whose worker runs it (mnist_models.jobs.worker), so a visitor can
only watch it on that replica. One replica trains; the others say where training runs and link there instead of
starting trainings their visitors could not follow after the proxy sent them elsewhere. The machine-wide training
lock still allows one training at a time whatever this setting says; it only decides where the Train page offers it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

TRAINING_ENV = "DIGIT_LAB_TRAINING"
"""``on`` (the default): this server trains. ``off``: it does not. Otherwise the address (``/…`` or ``http(s)://…``)
of the Train page of the server that does, which this server's Train page links to."""
REPLICA_ENV = "DIGIT_LAB_REPLICA"
"""This server's name among several (shown in the sidebar); unset for a lone server."""


@dataclass(frozen=True)
class TrainingPlace:
    here: bool
    url: str | None = None  # where training runs, when not here and known


def training_place() -> TrainingPlace:
    """Where this server's Train page trains, from $DIGIT_LAB_TRAINING; ValueError for a value it cannot mean."""
    value = os.environ.get(TRAINING_ENV, "").strip()
    if value.lower() in ("", "on"):
        return TrainingPlace(here=True)
    if value.lower() == "off":
        return TrainingPlace(here=False)
    if value.startswith(("/", "http://", "https://")):
        return TrainingPlace(here=False, url=value)
    raise ValueError(f"{TRAINING_ENV}={value!r}: expected 'on', 'off', or the address (/… or http(s)://…) of the "
                     f"Train page of the server that trains")


def replica_name() -> str | None:
    return os.environ.get(REPLICA_ENV, "").strip() or None
