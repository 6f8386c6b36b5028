"""A room full of visitors: 1, 4 and 8 people drawing on the Draw page at once in headless Chromium, optionally while
a training job started from the Train page runs, against a dashboard on 127.0.0.1 started as ./run.sh starts it.

Each visitor draws a 1, waits for every model's answer, clears the canvas with its bin, draws a 7, and so on, for a
bounded time. Reported per visitor count:
- browser side: mouse-up to all answers shown (median, p95), as the visitor feels it;
- server side: the Draw page's whole run for each drawing, measured inside the server (dashboard/timing.py);
- lost drawings (no answer within the timeout), wiped selections ("Models shown" not all of them at the end),
  exceptions (on the page or in the server's log), the server's peak memory (its children, a training one
  included).

Headless Chromium shares the 2 cores with the server and costs more CPU than it. In a real room every visitor's
browser runs on their own device, so Chromium runs here at a lower CPU priority (``--browser-nice``, default 15) to
keep its rendering from being charged to the server; the browser-side figures still include all of it. The loops are
bounded in count and time, send traffic to 127.0.0.1 only, and stop by themselves.

Run: MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_load [--quick] [--train] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    environment,
    format_table,
    print_environment,
    start_dashboard,
    wait_until_healthy,
    write_json,
)
from dashboard.timing import TIMING_LOG_ENV
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.paths import REPO_ROOT, RUNS_DIR_ENV, TRAINING_LOCK_ENV
from mnist_models.timing import percentiles

ANSWER_TIMEOUT_MS = 20_000
MODELS = len(MODEL_NAMES)  # every shipped model is selected on a first visit
STROKES = {"1": [(0.5, 0.2), (0.5, 0.8)], "7": [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)]}
ANSWERED = """([digit, models]) => {
    const metrics = [...document.querySelectorAll('[data-testid="stMetric"]')];
    const cnn = metrics.find(m => m.querySelector('[data-testid="stMetricLabel"]')?.innerText.trim() === "CNN");
    return metrics.length === models && cnn?.querySelector('[data-testid="stMetricValue"]')?.innerText.trim() === digit;
}"""
CLEARED = "() => document.querySelectorAll('[data-testid=\"stMetric\"]').length === 0"


class Dashboard:
    """The server process, its log, and its memory (with its children) sampled every 0.5 s."""

    def __init__(self, folder: Path):
        self.timing_log = folder / "timing.jsonl"
        self.log_path = folder / "server.log"
        env = {**os.environ, TIMING_LOG_ENV: str(self.timing_log), RUNS_DIR_ENV: str(folder / "runs"),
               TRAINING_LOCK_ENV: str(folder / "training.lock")}
        self.process, self.url = start_dashboard(env, self.log_path.open("w"))
        self.peak_rss_mb = 0.0
        self._sampling = threading.Event()
        if not wait_until_healthy(self.url, seconds=90):
            self.stop()
            raise RuntimeError(f"the dashboard did not start: {self.log_path.read_text()[-2000:]}")
        threading.Thread(target=self._sample_memory, daemon=True).start()

    def rss_mb(self, children: bool = True) -> float:
        """Resident memory of the server and (unless ``children`` is False) its children, a training process
        included, in MB."""
        pids = [self.process.pid]
        try:
            pids += [int(pid) for pid in Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
                     .read_text().split()] if children else []
        except OSError:
            pass
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024

    def _sample_memory(self) -> None:
        while not self._sampling.wait(0.5):
            self.peak_rss_mb = max(self.peak_rss_mb, self.rss_mb())

    def server_times(self, since: float) -> list[float]:
        if not self.timing_log.exists():
            return []
        events = [json.loads(line) for line in self.timing_log.read_text().splitlines() if line.strip()]
        return [event["ms"] for event in events if event["event"] == "draw" and event["time"] >= since]

    def tracebacks(self) -> int:
        return self.log_path.read_text().count("Traceback")

    def stop(self) -> None:
        self._sampling.set()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def _settled(page) -> None:
    await page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)


async def _stroke(page, points) -> None:
    box = await page.locator("canvas.upper-canvas").first.bounding_box()
    at = [(box["x"] + box["width"] * x, box["y"] + box["height"] * y) for x, y in points]
    await page.mouse.move(*at[0])
    await page.mouse.down()
    for point in at[1:]:
        await page.mouse.move(*point, steps=8)
    await page.mouse.up()


async def visitor(browser, url: str, seconds: float, max_drawings: int) -> dict:
    """One visitor drawing until ``seconds`` have passed (at most ``max_drawings``); what it saw."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1400})
    page = await context.new_page()
    latencies, lost = [], 0
    try:
        await page.goto(f"{url}/draw")
        await page.locator("canvas.upper-canvas").first.wait_for(timeout=90_000)
        await _settled(page)
        deadline = time.monotonic() + seconds
        for drawing in range(max_drawings):
            if time.monotonic() > deadline:
                break
            digit = "17"[drawing % 2]
            await _stroke(page, STROKES[digit])
            lifted = time.perf_counter()
            try:
                await page.wait_for_function(ANSWERED, arg=[digit, MODELS], timeout=ANSWER_TIMEOUT_MS, polling="raf")
                latencies.append((time.perf_counter() - lifted) * 1000)
            except Exception:  # noqa: BLE001 - Playwright's timeout: the drawing was not answered
                lost += 1
            await _settled(page)
            await page.get_by_role("button", name="Reset canvas & history").click()
            await page.wait_for_function(CLEARED, timeout=ANSWER_TIMEOUT_MS, polling="raf")
            await _settled(page)
        chips = await page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelectTagsContainer"] '
                                   '[data-tag]').count()
        exceptions = await page.locator('[data-testid="stException"]').count()
    finally:
        await context.close()
    return {"latencies_ms": latencies, "lost": lost, "wiped": int(chips != MODELS), "exceptions": exceptions}


async def start_training(browser, url: str, epochs: int) -> object:
    """Start a CNN run on the whole training set from the Train page, as a visitor would; returns its page."""
    context = await browser.new_context(viewport={"width": 1400, "height": 2000})
    page = await context.new_page()
    await page.goto(f"{url}/train")
    await page.wait_for_selector("h1", timeout=90_000)
    await _settled(page)
    await page.get_by_label("Epochs", exact=True).fill(str(epochs))
    await page.keyboard.press("Tab")
    await _settled(page)
    await page.get_by_role("button", name="Start training").click()
    await page.get_by_text(re.compile(r"CNN: epoch \d+/\d+ · ")).first.wait_for(timeout=120_000)
    return page


async def stop_training(page) -> str:
    """The Train page's last progress line, then cancel the run."""
    line = ""
    with_speed = page.get_by_text(re.compile(r"CNN: epoch \d+/\d+ · .*images/s"))
    if await with_speed.count():
        line = (await with_speed.first.inner_text()).strip()
    cancel = page.get_by_role("button", name="Cancel training")
    if await cancel.count():
        await cancel.click()
    await page.context.close()
    return line


def niced_chromium(folder: Path, niceness: int) -> str:
    """A launcher that starts Chromium at ``niceness``; its renderer processes inherit it."""
    launcher = folder / "chromium-niced"
    launcher.write_text(f'#!/bin/sh\nexec nice -n {niceness} {CHROMIUM} "$@"\n')
    launcher.chmod(0o755)
    return str(launcher)


async def phase(dashboard: Dashboard, chromium: str, visitors: int, seconds: float, max_drawings: int,
                train: bool) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_FLAGS)
        training_page = await start_training(browser, dashboard.url, epochs=20) if train else None
        tracebacks = dashboard.tracebacks()
        since = time.time()
        seen = await asyncio.gather(*(visitor(browser, dashboard.url, seconds, max_drawings)
                                      for _ in range(visitors)))
        server_ms = dashboard.server_times(since)
        training_line = await stop_training(training_page) if training_page is not None else None
        await browser.close()
    latencies = [value for result in seen for value in result["latencies_ms"]]
    browser_side, server_side = percentiles(latencies), percentiles(server_ms)
    return {
        "visitors": visitors, "training": train, "seconds": seconds, "drawings_answered": len(latencies),
        "browser_p50_ms": browser_side.p50_ms, "browser_p95_ms": browser_side.p95_ms,
        "server_p50_ms": server_side.p50_ms, "server_p95_ms": server_side.p95_ms, "server_runs": len(server_ms),
        "lost_drawings": sum(result["lost"] for result in seen),
        "wiped_selections": sum(result["wiped"] for result in seen),
        "exceptions": sum(result["exceptions"] for result in seen) + dashboard.tracebacks() - tracebacks,
        "peak_rss_mb": round(dashboard.peak_rss_mb), "training_progress": training_line,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each visitor draws, per phase")
    parser.add_argument("--train", action="store_true", help="also run every phase while a CNN trains")
    parser.add_argument("--browser-nice", type=int, default=15, help="Chromium's niceness (0: same as the server)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 and 2 visitors, one drawing each")
    parser.add_argument("--json", default=str(REPO_ROOT / "benchmarks" / "results" / "load.json"))
    args = parser.parse_args()
    visitors, seconds, max_drawings = ([1, 2], 1.0, 1) if args.quick else (args.visitors, args.seconds, 10_000)
    info = environment()
    print_environment(info)
    results = []
    with tempfile.TemporaryDirectory(prefix="digit-lab-load-") as folder:
        dashboard = Dashboard(Path(folder))
        chromium = niced_chromium(Path(folder), args.browser_nice) if args.browser_nice else CHROMIUM
        try:
            for train in ([False, True] if args.train else [False]):
                for count in visitors:
                    result = asyncio.run(phase(dashboard, chromium, count, seconds, max_drawings, train))
                    results.append(result)
                    print(f"{count} visitor(s){' while training' if train else ''}: {result}", flush=True)
        finally:
            dashboard.stop()
    print(format_table(
        ["visitors", "training", "answered", "browser p50/p95 ms", "server p50/p95 ms", "lost", "wiped",
         "exceptions", "peak RSS MB"],
        [[r["visitors"], "yes" if r["training"] else "no", r["drawings_answered"],
          f"{r['browser_p50_ms']:.0f} / {r['browser_p95_ms']:.0f}", f"{r['server_p50_ms']:.0f} / "
          f"{r['server_p95_ms']:.0f}", r["lost_drawings"], r["wiped_selections"], r["exceptions"], r["peak_rss_mb"]]
         for r in results]))
    write_json(args.json, {"environment": info, "quick": args.quick, "phases": results})


if __name__ == "__main__":
    main()
