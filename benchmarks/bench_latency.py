"""What a visitor feels, in headless Chromium against a dashboard on 127.0.0.1 started as ./run.sh starts it:

- the first visit of every page after the server started (each page's first visit in its own fresh browser context,
  in the sidebar's order), from navigation to the page ready: its title shown, the script run over, every chart drawn;
- switching to an already-visited page with the sidebar, to the page ready;
- drawing on the Draw page, one visitor and then --visitors at once: mouse-up to every selected model's answer
  shown, broken down with timestamps taken in the page itself (performance.now()):
  * the canvas component's delay: mouse-up to the drawing's message leaving on the websocket;
  * the server's answer: that message to the first message back (network and the rerun's start);
  * the stream: messages received until the answers are shown, and the time of the last of them;
  * rendering: the last message to the answers and the probabilities chart on screen;
  * the server's whole Draw run, measured inside the server (dashboard/timing.py), and the models' inference time as
    the page shows it (the sum of the per-model captions).

Headless Chromium shares the 2 cores with the server and costs more CPU than it; the browser and Playwright's driver
run at --browser-nice (default 15; the server keeps its priority) so their work is charged to the server less, and
the page waits for the answers with a MutationObserver rather than being polled. The browser-side figures still
include all of the browser's work. Traffic goes to
127.0.0.1 only; every loop is bounded and stops by itself.

Run: MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_latency [--quick] [--json FILE]
With --before FILE, an earlier run's results (e.g. of an older commit, run from a checkout of it) are carried into
this run's JSON, so the README shows before and after side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_load import ANSWER_TIMEOUT_MS, CLEARED, STROKES, Dashboard, _settled, _stroke
from benchmarks.common import CHROMIUM, CHROMIUM_FLAGS, environment, format_table, print_environment, write_json
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.paths import REPO_ROOT
from mnist_models.timing import percentiles

PAGES = {"Overview": "/", "Draw": "/draw", "Explain": "/explain", "Dataset": "/dataset", "Compare": "/compare",
         "Evidence": "/evidence", "Train": "/train"}
# Counts the page's websocket traffic and the mouse-up, on the page's own clock, before any of its scripts run.
INSTRUMENT = """(() => {
    window.__frames = [];
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
        constructor(...args) {
            super(...args);
            this.addEventListener("message", () => window.__frames.push(["in", performance.now()]));
        }
        send(data) { window.__frames.push(["out", performance.now()]); return super.send(data); }
    };
    window.addEventListener("pointerup", () => { window.__liftedAt = performance.now(); }, true);
})();"""
# True once the page is ready: a title, no script running, every chart drawn (and no skeleton or spinner left).
READY = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.dataset.testScriptState === "running" || !document.querySelector("h1")) return false;
    if (document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"]')) return false;
    return [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].every(c => c.querySelector(".main-svg"));
}"""
# Resolves once every model's answer and the probabilities chart are shown, noting the moment on the page's clock.
# A MutationObserver checks after each change of the page: no polling from the driver, whose CPU would be the server's.
ANSWERED = """([digit, models, timeout]) => new Promise((resolve, reject) => {
    const done = () => {
        const metrics = [...document.querySelectorAll('[data-testid="stMetric"]')];
        const cnn = metrics.find(m => m.querySelector('[data-testid="stMetricLabel"]')?.innerText.trim() === "CNN");
        return metrics.length === models
            && cnn?.querySelector('[data-testid="stMetricValue"]')?.innerText.trim() === digit
            && document.querySelector('[data-testid="stPlotlyChart"] .main-svg') !== null;
    };
    const finish = () => { window.__answeredAt = performance.now(); observer.disconnect(); resolve(true); };
    const observer = new MutationObserver(() => { if (done()) finish(); });
    observer.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
    if (done()) finish();
    setTimeout(() => { observer.disconnect(); reject(new Error("not answered")); }, timeout);
})"""
# The drawing's timeline from the page's clock: read after ANSWERED held.
TIMELINE = """() => {
    const lifted = window.__liftedAt, answered = window.__answeredAt;
    const frames = window.__frames.filter(([, at]) => at >= lifted && at <= answered);
    const sent = frames.find(([way]) => way === "out");
    const received = frames.filter(([way, at]) => way === "in" && sent && at >= sent[1]);
    const captions = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')].map(c => c.innerText.trim());
    return {lifted, answered, sent: sent ? sent[1] : null, received: received.map(([, at]) => at), captions};
}"""
INFERENCE_CAPTION = re.compile(r"^([\d.]+) ms")


async def _ready(page) -> None:
    await page.wait_for_function(READY, timeout=120_000, polling="raf")


async def first_visits(browser, url: str, pages: int = len(PAGES)) -> dict[str, float]:
    """The first ``pages`` pages' (default all) first visits, each in a fresh context, in the sidebar's order:
    navigation to ready, in ms."""
    times = {}
    for title, path in list(PAGES.items())[:pages]:
        context = await browser.new_context(viewport={"width": 1400, "height": 1400})
        page = await context.new_page()
        start = time.perf_counter()
        await page.goto(url + path)
        await _ready(page)
        times[title] = (time.perf_counter() - start) * 1000
        await context.close()
    return times


async def page_switches(browser, url: str, rounds: int, pages: int = len(PAGES)) -> list[dict[str, Any]]:
    """The first ``pages`` pages (default all) visited once in one tab, then ``rounds`` passes of switching to each
    with the sidebar."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1400})
    page = await context.new_page()
    await page.goto(url)
    await _ready(page)
    titles = list(PAGES)[:pages]
    for title in titles[1:]:
        await page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
        await _ready(page)
    switches = []
    for _ in range(rounds):
        for title in titles:
            link = page.locator('[data-testid="stSidebarNavLink"]', has_text=title)
            start = time.perf_counter()
            await link.click()
            await page.wait_for_function(f"() => document.querySelector('h1') && location.pathname.endsWith("
                                         f"'{PAGES[title].rstrip('/') or '/'}')", polling="raf")
            await _ready(page)
            switches.append({"page": title, "ms": (time.perf_counter() - start) * 1000})
    await context.close()
    return switches


async def open_draw_page(browser, url: str):
    """A visitor's session on the Draw page, instrumented (INSTRUMENT) and ready to draw; close its context after."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1400})
    await context.add_init_script(INSTRUMENT)
    page = await context.new_page()
    try:
        await page.goto(f"{url}/draw")
        await page.locator("canvas.upper-canvas").first.wait_for(timeout=90_000)
        await _settled(page)
    except BaseException:
        await context.close()
        raise
    return page


async def draw_on(page, drawings: int, timeout_ms: int = ANSWER_TIMEOUT_MS, until: float | None = None
                  ) -> list[dict[str, Any]]:
    """``drawings`` on an open Draw page (fewer if time.monotonic() passes ``until``), a 1 then a 7 and so on, the
    canvas cleared in between; each one's breakdown, or {"lost": True} when not answered within ``timeout_ms``."""
    timelines = []
    for drawing in range(drawings):
        if until is not None and time.monotonic() > until:
            break
        digit = "17"[drawing % 2]
        await page.evaluate("() => { window.__answeredAt = undefined; }")
        await _stroke(page, STROKES[digit])
        try:
            await page.evaluate(ANSWERED, [digit, len(MODEL_NAMES), timeout_ms])
            timelines.append(breakdown(await page.evaluate(TIMELINE)))
        except Exception:  # noqa: BLE001 - the page's timeout: the drawing was not answered
            timelines.append({"lost": True})
        await _settled(page)
        await page.get_by_role("button", name="Reset canvas & history").click()
        await page.wait_for_function(CLEARED, timeout=timeout_ms, polling="raf")
        await _settled(page)
    return timelines


async def drawer(browser, url: str, drawings: int) -> list[dict[str, Any]]:
    """One visitor's ``drawings`` on the Draw page in a session of its own."""
    page = await open_draw_page(browser, url)
    try:
        return await draw_on(page, drawings)
    finally:
        await page.context.close()


def breakdown(timeline: dict[str, Any]) -> dict[str, Any]:
    """One drawing's figures, in ms from mouse-up unless named otherwise."""
    lifted, sent, received = timeline["lifted"], timeline["sent"], timeline["received"]
    inference = [float(match.group(1)) for caption in timeline["captions"]
                 if (match := INFERENCE_CAPTION.match(caption))]
    last = received[-1] if received else timeline["answered"]
    return {
        "lost": False, "total_ms": timeline["answered"] - lifted,
        "component_delay_ms": (sent - lifted) if sent is not None else None,
        "first_message_ms": (received[0] - sent) if received and sent is not None else None,
        "last_message_ms": last - lifted, "messages": len(received),
        "render_ms": timeline["answered"] - last, "inference_ms": sum(inference) if inference else None,
    }


def summarise(drawings: list[dict[str, Any]], server_ms: list[float]) -> dict[str, Any]:
    answered = [drawing for drawing in drawings if not drawing["lost"]]
    totals = percentiles([drawing["total_ms"] for drawing in answered])

    def median(key: str) -> float | None:
        values = [drawing[key] for drawing in answered if drawing[key] is not None]
        return statistics.median(values) if values else None

    server = percentiles(server_ms)
    return {"drawings": len(drawings), "lost": len(drawings) - len(answered), "totals_ms": [
                round(drawing["total_ms"]) for drawing in answered], "p50_ms": totals.p50_ms,
            "p95_ms": totals.p95_ms, "server_run_p50_ms": server.p50_ms, "server_run_p95_ms": server.p95_ms,
            **{f"median_{key}": median(key) for key in ("component_delay_ms", "first_message_ms", "last_message_ms",
                                                         "messages", "render_ms", "inference_ms")}}


async def measure(dashboard: Dashboard, chromium: str, visitors: int, drawings: int, rounds: int,
                  pages: int = len(PAGES)) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        visits = await first_visits(browser, dashboard.url, pages)
        switches = await page_switches(browser, dashboard.url, rounds, pages)
        phases = {}
        for count in sorted({1, visitors}):
            since = time.time()
            seen = await asyncio.gather(*(drawer(browser, dashboard.url, drawings) for _ in range(count)))
            phases[count] = summarise([drawing for result in seen for drawing in result],
                                      dashboard.server_times(since))
        await browser.close()
    switch_times = percentiles([switch["ms"] for switch in switches])
    return {"first_visit_ms": visits, "switch": {"p50_ms": switch_times.p50_ms, "p95_ms": switch_times.p95_ms,
                                                 "switches": switches},
            "drawing": {str(count): phase for count, phase in phases.items()},
            "exceptions": dashboard.tracebacks()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=4, help="visitors drawing at once in the second phase")
    parser.add_argument("--drawings", type=int, default=12, help="drawings per visitor and phase (default 12)")
    parser.add_argument("--rounds", type=int, default=2, help="passes of page switches (default 2)")
    parser.add_argument("--browser-nice", type=int, default=15,
                        help="niceness of the browser and its driver (0: same as the server)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: first visits of Overview and Draw, 1 pass of switches between them, "
                             "2 visitors with 1 drawing each")
    parser.add_argument("--before", type=Path, metavar="FILE", help="an earlier run's JSON, carried in as 'before'")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    visitors, drawings, rounds = (2, 1, 1) if args.quick else (args.visitors, args.drawings, args.rounds)

    info = environment()
    print_environment(info)
    with tempfile.TemporaryDirectory(prefix="digit-lab-latency-") as folder:
        dashboard = Dashboard(Path(folder))
        try:
            os.nice(args.browser_nice)  # this process, Playwright's driver and Chromium; the server started before it
            results = asyncio.run(measure(dashboard, str(CHROMIUM), visitors, drawings, rounds,
                                          2 if args.quick else len(PAGES)))
        finally:
            dashboard.stop()

    print("\nfirst visit after the server started (ms): " + ", ".join(
        f"{title} {ms:.0f}" for title, ms in results["first_visit_ms"].items()))
    print(f"switching to a visited page: p50 {results['switch']['p50_ms']:.0f} ms, "
          f"p95 {results['switch']['p95_ms']:.0f} ms")

    def cell(value: float | None) -> str:
        return "" if value is None else f"{value:.0f}"

    print(f"\nmouse-up to all {len(MODEL_NAMES)} answers shown, with where the time goes (medians, ms)")
    print(format_table(
        ["visitors", "p50", "p95", "canvas delay", "to 1st message", "last message", "messages", "render",
         "server run p50", "inference", "lost"],
        [[count, cell(row["p50_ms"]), cell(row["p95_ms"]), cell(row["median_component_delay_ms"]),
          cell(row["median_first_message_ms"]), cell(row["median_last_message_ms"]), cell(row["median_messages"]),
          cell(row["median_render_ms"]), cell(row["server_run_p50_ms"]), f"{row['median_inference_ms'] or 0:.1f}",
          row["lost"]] for count, row in results["drawing"].items()]))
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True).stdout.strip()
        before = json.loads(args.before.read_text()) if args.before else None
        write_json(args.json, {"benchmark": "latency", "environment": info, "commit": commit,
                               "models": len(MODEL_NAMES), "browser_nice": args.browser_nice, **results,
                               "before": before and {key: before[key] for key in (
                                   "environment", "commit", "models", "first_visit_ms", "switch", "drawing")}})


if __name__ == "__main__":
    main()
