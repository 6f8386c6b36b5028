"""What one dashboard process holds: 1, 8 and 32 visitors with the Draw page open at once, in one headless Chromium
(a browser context per visitor), against a server on 127.0.0.1 started as ./run.sh starts it.

Sessions are added, never replaced: 1 is opened, then 7 more, then 24 more. At each count:
- the server process's resident memory once the new sessions have loaded, and again after every session has drawn
  (its children, the training fork server, are measured once: sessions do not live there); memory per session is
  the slope of a least-squares line through (sessions, memory), the server with no session included;
- every open session draws at once (a 1, then a 7, …, at most --drawings each, for at most --seconds): mouse-up
  to all answers on screen, from the page's own clock, with bench_latency's breakdown (its instrumentation and
  summary: mouse-up to the answer's last message in, rendering after it), and the server's
  own time for each Draw run (dashboard/timing.py), median and p95; and how long the drawing took in all.

All the visitors' pages run in one Chromium on the same cores as the server; it runs at --browser-nice (default 15),
so the server keeps its share, but its rendering of up to 32 pages is in the browser-side figures. In a real room each
visitor's browser has a device of its own. Every loop is bounded in count and time; traffic stays on 127.0.0.1.

Run: MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_viewers [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_latency import draw_on, open_draw_page, summarise
from benchmarks.bench_load import Dashboard, niced_chromium
from benchmarks.common import CHROMIUM, CHROMIUM_FLAGS, environment, format_table, print_environment, write_json
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.paths import REPO_ROOT

OPENING_AT_ONCE = 4  # sessions loading the Draw page together; more only queue behind each other on 2 cores
ANSWER_TIMEOUT_MS = 90_000  # 32 drawings at once on 2 cores take long: slow is measured, only a hang is "lost"


def settled_rss_mb(dashboard: Dashboard, seconds: float = 3.0) -> float:
    """The server process's memory (the sessions live there; its children, the training fork server, hold none)
    once the last messages are handled: the median of a few readings over ``seconds``."""
    readings = []
    for _ in range(5):
        time.sleep(seconds / 5)
        readings.append(dashboard.rss_mb(children=False))
    return statistics.median(readings)


async def open_sessions(browser, url: str, count: int) -> tuple[list, float]:
    """``count`` new visitors on the Draw page, a few loading at a time; the pages and the seconds it took."""
    gate = asyncio.Semaphore(OPENING_AT_ONCE)

    async def one():
        async with gate:
            return await open_draw_page(browser, url)

    start = time.perf_counter()
    pages = await asyncio.gather(*(one() for _ in range(count)))
    return list(pages), time.perf_counter() - start


async def measure(dashboard: Dashboard, chromium: str, counts: list[int], drawings: int, seconds: float,
                  settle_s: float = 3.0) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    baseline = settled_rss_mb(dashboard, settle_s)
    phases, pages = [], []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        for count in counts:
            load = os.getloadavg()[0]
            added, opening_s = await open_sessions(browser, dashboard.url, count - len(pages))
            pages += added
            rss_open = settled_rss_mb(dashboard, settle_s)
            since, until, start = time.time(), time.monotonic() + seconds, time.perf_counter()
            seen = await asyncio.gather(*(draw_on(page, drawings, ANSWER_TIMEOUT_MS, until) for page in pages))
            drawing_s = time.perf_counter() - start
            rss_drawn = settled_rss_mb(dashboard, settle_s)
            summary = summarise([drawing for result in seen for drawing in result], dashboard.server_times(since))
            summary.pop("totals_ms")
            phases.append({"sessions": count, "opening_s": round(opening_s, 1), "load_average_1": round(load, 2),
                           "rss_open_mb": round(rss_open), "rss_after_drawing_mb": round(rss_drawn),
                           "drawing_s": round(drawing_s, 1), **summary})
            print(f"{count} session(s): {phases[-1]}", flush=True)
        await browser.close()

    def per_session(key: str) -> float:
        points = [(0, baseline)] + [(phase["sessions"], phase[key]) for phase in phases]
        return statistics.linear_regression(*zip(*points, strict=True)).slope

    return {"baseline_rss_mb": round(baseline), "children_rss_mb": round(dashboard.rss_mb() - dashboard.rss_mb(False)),
            "phases": phases,
            "mb_per_session_open": round(per_session("rss_open_mb"), 2),
            "mb_per_session_after_drawing": round(per_session("rss_after_drawing_mb"), 2),
            "exceptions": dashboard.tracebacks()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 8, 32], help="session counts, rising")
    parser.add_argument("--drawings", type=int, default=4, help="drawings per session and count (default 4)")
    parser.add_argument("--seconds", type=float, default=90.0, help="no new drawing after this long, per count")
    parser.add_argument("--browser-nice", type=int, default=15, help="Chromium's niceness (0: same as the server)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 and 2 sessions, one drawing each, memory read over 0.5 s instead of 3 s")
    parser.add_argument("--json", default=str(REPO_ROOT / "benchmarks" / "results" / "viewers.json"))
    args = parser.parse_args()
    counts, drawings = ([1, 2], 1) if args.quick else (sorted(set(args.sessions)), args.drawings)

    info = environment()
    print_environment(info)
    with tempfile.TemporaryDirectory(prefix="digit-lab-viewers-") as folder:
        dashboard = Dashboard(Path(folder))
        chromium = niced_chromium(Path(folder), args.browser_nice) if args.browser_nice else str(CHROMIUM)
        try:
            results = asyncio.run(measure(dashboard, chromium, counts, drawings, args.seconds,
                                          0.5 if args.quick else 3.0))
        finally:
            dashboard.stop()

    print(format_table(
        ["sessions", "RSS open MB", "RSS after drawing MB", "answered", "lost", "in s", "browser p50/p95 ms",
         "last message", "render", "server p50/p95 ms", "load"],
        [[p["sessions"], p["rss_open_mb"], p["rss_after_drawing_mb"], p["drawings"] - p["lost"], p["lost"],
          p["drawing_s"], f"{p['p50_ms']:.0f} / {p['p95_ms']:.0f}", f"{p['median_last_message_ms']:.0f}",
          f"{p['median_render_ms']:.0f}", f"{p['server_run_p50_ms']:.0f} / {p['server_run_p95_ms']:.0f}",
          p["load_average_1"]] for p in results["phases"]]))
    print(f"server alone: {results['baseline_rss_mb']} MB; per session: {results['mb_per_session_open']} MB open, "
          f"{results['mb_per_session_after_drawing']} MB after drawing")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                            text=True).stdout.strip()
    write_json(args.json, {"benchmark": "viewers", "environment": info, "commit": commit, "quick": args.quick,
                           "models": len(MODEL_NAMES), "drawings_per_session": drawings, "seconds": args.seconds,
                           "browser_nice": args.browser_nice, **results})


if __name__ == "__main__":
    main()
