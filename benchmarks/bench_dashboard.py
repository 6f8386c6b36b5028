"""Server-side dashboard timings, measured through Streamlit's AppTest (the script run, no browser):

- first load of each page in a fresh process (the process start and imports excluded; the Overview run that any
  visit starts with is reported on its own, since it loads the models);
- a canvas update on the Draw page: from the drawing's PNG arriving to all predictions rendered, median and p95.

Run: MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_dashboard [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import canvas_stroke, environment, print_environment, write_json
from mnist_models.timing import percentiles

REPO = Path(__file__).resolve().parent.parent
PAGES = ["pages/draw_page.py", "pages/dataset_page.py", "pages/compare_page.py"]


def first_loads(page: str) -> dict[str, float]:
    """In this (fresh) process: the Overview run, then the first run of ``page``."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    start = time.perf_counter()
    app.run()
    overview_s = time.perf_counter() - start
    start = time.perf_counter()
    app.switch_page(page).run()
    page_s = time.perf_counter() - start
    assert not app.exception, [exception.value for exception in app.exception]
    return {"overview_s": overview_s, "page_s": page_s}


def canvas_updates(runs: int) -> list[float]:
    """Seconds per Draw-page run after a new stroke arrives, over ``runs`` different strokes."""
    from streamlit.testing.v1 import AppTest


    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=300).run()
    app.switch_page("pages/draw_page.py").run()
    app.session_state["canvas"] = canvas_stroke(140, 60, 140, 220)
    app.run()  # warm-up: first inference of each model
    timings = []
    for run in range(runs):
        app.session_state["canvas"] = canvas_stroke(120 + run % 40, 50, 140, 230 - run % 30)
        start = time.perf_counter()
        app.run()
        timings.append(time.perf_counter() - start)
        assert len(app.metric) >= 1 and not app.exception
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the Draw page's first load only, 5 canvas updates instead of 30")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(first_loads(args.child)))
        return

    info = environment()
    print_environment(info)
    results: dict[str, object] = {"environment": info, "first_load": {}}
    for page in PAGES[:1] if args.quick else PAGES:
        output = subprocess.run([sys.executable, "-m", "benchmarks.bench_dashboard", "--child", page],
                                capture_output=True, text=True, check=True, cwd=REPO).stdout
        results["first_load"][page] = json.loads(output.strip().splitlines()[-1])
    timings_ms = [1000 * seconds for seconds in canvas_updates(5 if args.quick else 30)]
    results["canvas_update_ms"] = {**percentiles(timings_ms).to_dict(), "runs": len(timings_ms)}

    print("first load, fresh process (s): page run after the Overview run that starts every visit")
    for page, figures in results["first_load"].items():
        print(f"  {page:<24} {figures['page_s']:6.2f}   (Overview run before it: {figures['overview_s']:.2f})")
    update = results["canvas_update_ms"]
    print(f"canvas update → all predictions rendered: median {update['p50_ms']:.0f} ms, p95 {update['p95_ms']:.0f} ms "
          f"over {update['runs']} strokes (goal: median under 100 ms)")
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
