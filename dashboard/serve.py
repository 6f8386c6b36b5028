"""Start the dashboard: ``python -m dashboard.serve [streamlit run options]`` (what ``./run.sh`` and ``digit-lab
serve`` call).

Why not plain ``streamlit run app.py``: a folder called ``pages/`` beside the entry script makes Streamlit start in
its legacy multipage mode, and it leaves that mode only once some session has run ``st.navigation``. Sessions that
start before then (the first visitors of a fresh server, all at once in a demo room) run the page files directly,
get their own page names ("/draw_page"), a false "Page not found" for every deep link, and import the library from
several threads in different orders (a Python import deadlock). Streamlit has no option for this, so the launcher
sets the class attribute that ``st.navigation`` itself sets, before the server accepts anyone. It also warms up
(dashboard/warmup.py) before it opens the port, so the first visitor of each page does not pay for imports and loads,
and then freezes the heap (see ``main``).
"""

from __future__ import annotations

import gc
import sys

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

from dashboard.replica import training_place
from dashboard.warmup import warm_up
from mnist_models.paths import REPO_ROOT

APP = REPO_ROOT / "app.py"


def main(arguments: list[str] | None = None) -> None:
    PagesManager.uses_pages_directory = False
    try:
        training_place()  # a mistyped DIGIT_LAB_TRAINING stops the start, not the Train page's first visit
    except ValueError as error:
        sys.exit(f"digit-lab: {error}")
    steps = warm_up()
    print("digit-lab: warmed up in " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps.items()),
          flush=True)
    # Streamlit collects garbage in full after every script run (runner.postScriptGC), holding the GIL while it walks
    # every object: with torch, Captum, plotly and pandas loaded, 240-300 ms on this machine, during which the server
    # cannot send answers it has already computed (each drawing's, each slider's). What is loaded by now lives as long
    # as the server, so it is frozen: the collector skips it, and the full collection takes under a millisecond.
    gc.freeze()
    cli.main(["run", str(APP), *(sys.argv[1:] if arguments is None else arguments)], prog_name="streamlit")


if __name__ == "__main__":
    main()
