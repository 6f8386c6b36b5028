"""The optional parts of digit-lab and the packages each needs (pyproject.toml's extras), so that a command run
without them says which extra to install instead of failing on an import.

``pip install digit-lab`` installs the library alone (training, evaluation, the command line); the extras add
attributions and attacks (``explain``), the evidence's robustness curves and feature maps (``evidence``),
hyperparameter search (``tune``), the database of the room's drawings (``room``), the ONNX export and its runtime
(``export``) and the dashboard (``app``, which includes the other five).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import DigitLabError

EXTRAS: dict[str, tuple[str, ...]] = {
    "explain": ("captum",),
    "evidence": ("captum", "umap"),
    "tune": ("optuna",),
    "room": ("sqlalchemy", "alembic"),
    "export": ("onnx", "onnxscript", "onnxruntime"),
    "app": ("streamlit", "streamlit_drawable_canvas", "plotly", "pandas", "jinja2"),
}
"""Each extra → the top-level modules it brings (import names, not package names)."""


class MissingExtra(DigitLabError, ImportError):
    """An optional part of digit-lab used without its packages; the message names the extra that installs them."""


@contextmanager
def needs_extra(extra: str, purpose: str) -> Iterator[None]:
    """Run imports that need ``extra``: a missing package of that extra becomes a MissingExtra saying that
    ``purpose`` needs it and how to install it; any other import error passes through unchanged."""
    try:
        yield
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if missing not in EXTRAS[extra]:
            raise
        raise MissingExtra(f"{purpose} needs the optional package {missing!r}, which is not installed: "
                           f"pip install 'digit-lab[{extra}]'") from None


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that are not installed (found without importing them)."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require_extra(extra: str, purpose: str) -> None:
    """Refuse up front, before any work, when a package of ``extra`` is missing (a MissingExtra naming it)."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtra(f"{purpose} needs the optional package(s) {', '.join(map(repr, missing))}, which are not "
                           f"installed: pip install 'digit-lab[{extra}]'")
