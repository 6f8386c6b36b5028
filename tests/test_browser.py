"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against `streamlit run`.

Opens every page, checks that none shows an exception, draws a "1" with the mouse and expects the CNN to read it,
then trains a small CNN run from the Train page, watches its live progress and expects it on Compare.
Screenshots go to $SCREENSHOT_DIR (scripts/screenshots.sh points it at docs/screenshots for the README).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mnist_models.paths import REPO_ROOT, RUNS_DIR_ENV

CHROMIUM = Path("/usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")]
PAGES = {"overview": "", "draw": "draw", "dataset": "dataset", "compare": "compare", "train": "train"}
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(mnist_root, tmp_path_factory):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO_ROOT,
        env={**os.environ, "MNIST_DATA_DIR": str(mnist_root), RUNS_DIR_ENV: str(tmp_path_factory.mktemp("runs"))},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail(f"streamlit did not start: {process.stdout.read()}")
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def page(server):
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 2200})
        page = context.new_page()
        # The server's first session starts in Streamlit's legacy pages/ mode until app.py's st.navigation runs; a
        # deep link as the very first visit gets a spurious "Page not found" notice. Open the root first, as
        # ./run.sh's browser does.
        page.goto(server)
        page.wait_for_selector("h1", timeout=60_000)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _settle(page) -> None:
    """Wait until the script has finished its run and nothing is loading."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
    page.wait_for_timeout(1000)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_without_an_exception(page, server, screenshot_dir, name):
    page.goto(f"{server}/{PAGES[name]}")
    page.wait_for_selector("h1", timeout=60_000)
    _settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stSidebarNavLink"]').count() == len(PAGES)
    page.screenshot(path=str(screenshot_dir / f"{name}.png"), full_page=True)


def test_drawing_a_vertical_stroke_is_read_as_one(page, server, screenshot_dir):
    page.goto(f"{server}/draw")
    surface = page.locator("canvas.upper-canvas").first
    surface.wait_for(timeout=60_000)
    _settle(page)
    box = surface.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(x, box["y"] + box["height"] * 0.8, steps=20)
    page.mouse.up()
    cnn = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=re.compile(r"^\s*CNN\s*$")))
    playwright_api.expect(cnn.locator('[data-testid="stMetricValue"]')).to_have_text("1", timeout=60_000)
    _settle(page)
    assert page.locator('[data-testid="stMetric"]').count() >= 6
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(screenshot_dir / "draw-prediction.png"), full_page=True)


def test_a_box_drawn_on_the_pca_map_shows_those_images(page, server):
    page.goto(f"{server}/dataset")
    page.wait_for_selector("h1", timeout=60_000)
    _settle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').last
    chart.scroll_into_view_if_needed()
    chart.hover()
    chart.locator('.modebar-btn[data-title="Box Select"]').click()
    area = chart.locator(".nsewdrag").first.bounding_box()
    x, y = area["x"] + area["width"] * 0.4, area["y"] + area["height"] * 0.4
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 80, y + 60, steps=10)
    page.mouse.up()
    playwright_api.expect(page.get_by_text(re.compile(r"^\d+ images? picked on the map"))).to_be_visible(
        timeout=60_000)
    _settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_run_trained_from_the_page_shows_live_progress_and_appears_on_compare(page, server, screenshot_dir):
    page.goto(f"{server}/train")
    page.wait_for_selector("h1", timeout=60_000)
    _settle(page)
    page.get_by_label("Epochs").fill("2")
    page.keyboard.press("Tab")
    subset = page.locator('[data-testid="stSlider"]').filter(has_text="Training images").get_by_role("slider")
    subset.focus()
    page.keyboard.press("Home")
    for _ in range(3):
        page.keyboard.press("ArrowRight")  # 250 → 1,000 → 5,000 → 20,000 images: about 10 s of training here
    page.get_by_role("button", name="Start training").click()
    live = page.get_by_text(re.compile(r"CNN: epoch \d/2 · \d+% · [\d,]+ images/s · about \d+:\d\d left"))
    playwright_api.expect(live).to_be_visible(timeout=120_000)
    assert page.get_by_role("button", name="Cancel training").is_visible()
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=60_000)
    try:  # for the screenshot only: the second epoch shows the first one's curves growing
        page.get_by_text(re.compile(r"CNN: epoch 2/2 · [1-9]\d% · ")).wait_for(timeout=30_000)
    except playwright_api.TimeoutError:
        pass
    page.screenshot(path=str(screenshot_dir / "train-live.png"), full_page=True)
    playwright_api.expect(page.get_by_text("CNN · run 1 on the 10,000 test images")).to_be_visible(timeout=300_000)
    _settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(screenshot_dir / "train.png"), full_page=True)
    page.goto(f"{server}/compare")
    page.wait_for_selector("h1", timeout=60_000)
    _settle(page)
    playwright_api.expect(page.get_by_text("CNN · run 1").first).to_be_attached(timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0
