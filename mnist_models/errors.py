"""The base class of every error digit-lab raises on purpose, so a caller can catch "ours" in one clause.

Each subclass also keeps the built-in base it had before (RuntimeError, ValueError), so older ``except`` clauses
still match.
"""


class DigitLabError(Exception):
    """An expected failure with a message written for the person who has to act on it."""
