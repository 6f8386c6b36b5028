"""Stopping the dashboard server while it trains, in a real browser against the server ./run.sh starts: SIGTERM ends
the training cleanly with its finished epoch saved as a cancelled run (it used to abort the server with "terminate
called without an active exception", exit 134, and lose the epochs); after the server and its training process are
killed outright (a power cut), the next server's Train page offers the interrupted run, and Complete saves it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from test_browser import _settle

from benchmarks.common import CHROMIUM, CHROMIUM_FLAGS, start_dashboard, wait_until_healthy
from mnist_models import load_checkpoint, load_evaluation
from mnist_models.paths import RUNS_DIR_ENV

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")]
RUN_FILES = [".last-run", "run001-cnn.metrics.json", "run001-cnn.pt"]


class Server:
    """`python -m dashboard.serve` in a session of its own (so a power cut can take its whole process group)."""

    def __init__(self, data_root: Path, runs: Path) -> None:
        self.process, self.url = start_dashboard(
            {**os.environ, "MNIST_DATA_DIR": str(data_root), RUNS_DIR_ENV: str(runs)}, subprocess.PIPE,
            start_new_session=True)
        if not wait_until_healthy(self.url):
            self.power_cut()
            pytest.fail(f"the dashboard did not start: {self.process.stdout.read()}")

    def power_cut(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(60)


@pytest.fixture
def browser():
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def open_train_page(browser, server: Server):
    page = browser.new_context(viewport={"width": 1400, "height": 2200}).new_page()
    page.goto(f"{server.url}/train")
    page.wait_for_selector("h1", timeout=60_000)
    _settle(page)
    return page


def train_into_epoch_two(browser, server: Server) -> None:
    """Start three epochs of the CNN on 5,000 images from the Train page; return once epoch 2 is under way (on a busy
    machine the stop that follows may land in epoch 3: the tests read how many epochs had finished)."""
    page = open_train_page(browser, server)
    page.get_by_label("Epochs", exact=True).fill("3")
    page.keyboard.press("Tab")
    subset = page.locator('input[type="range"][aria-label="Training images"]')
    subset.focus()
    page.keyboard.press("Home")
    for _ in range(2):
        page.keyboard.press("ArrowRight")  # 250 → 1,000 → 5,000 images
    page.get_by_role("button", name="Start training").click()
    epoch_two = page.get_by_text(re.compile(r"CNN: epoch 2/3 · \d+% · "))
    playwright_api.expect(epoch_two).to_be_visible(timeout=300_000)


def test_sigterm_stops_the_server_cleanly_and_keeps_the_finished_epoch(mnist_root, tmp_path, browser):
    runs = tmp_path / "runs"
    server = Server(mnist_root, runs)
    try:
        train_into_epoch_two(browser, server)
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(300)
    finally:
        if server.process.poll() is None:
            server.power_cut()
    output = server.process.stdout.read()
    assert code == 0, output
    assert "terminate called" not in output and "Traceback" not in output, output
    _, meta = load_checkpoint(runs / "run001-cnn.pt")
    assert meta.cancelled is True and meta.epochs_completed in (1, 2)  # stopped in epoch 2 (or 3), nothing lost
    assert load_evaluation(runs / "run001-cnn.pt", meta=meta).metrics.count == 10_000
    assert sorted(path.name for path in runs.iterdir()) == RUN_FILES


def test_after_a_power_cut_the_next_server_offers_to_complete_the_interrupted_run(mnist_root, tmp_path, browser):
    runs = tmp_path / "runs"
    server = Server(mnist_root, runs)
    try:
        train_into_epoch_two(browser, server)
    finally:
        server.power_cut()  # the server, its fork server and the training process, all at once
    left = sorted(path.name for path in runs.iterdir() if not path.name.endswith(".tmp"))
    assert left == [".last-run", "run001-cnn.pt.partial"]  # and, when the cut fell in a write, its temporary file

    server = Server(mnist_root, runs)
    try:
        page = open_train_page(browser, server)
        offered = page.get_by_text(re.compile(r"CNN · run 1: interrupted after [12] of 3 epoch\(s\)"))
        playwright_api.expect(offered).to_be_visible()
        finished = int(re.search(r"after (\d) of 3", offered.inner_text()).group(1))
        page.get_by_role("button", name="Complete").click()
        saved = page.get_by_text("The interrupted CNN · run 1 was evaluated and saved with its finished epochs.")
        playwright_api.expect(saved).to_be_visible(timeout=300_000)
        _settle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        server.power_cut()
    assert load_checkpoint(runs / "run001-cnn.pt")[1].epochs_completed == finished
    assert sorted(path.name for path in runs.iterdir()) == RUN_FILES, "Complete leaves no temporary file behind"
