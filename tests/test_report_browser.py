"""The stakeholder report end to end: downloaded from the Overview of a running dashboard, then opened in Chromium
from the file alone (nothing else fetched, no console error) and printed to PDF a section per page.

Its first page is saved as $SCREENSHOT_DIR/report.png for the README (scripts/screenshots.sh).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from benchmarks.common import CHROMIUM, CHROMIUM_FLAGS
from mnist_models.models.registry import MODEL_NAMES
from tests.test_browser import _dashboard

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")]
SECTIONS = 10  # objective … appendix, each printed from a new page


def test_the_overview_downloads_a_report_that_opens_offline_and_prints(mnist_root, tmp_path):
    title = "Digit readers for the board"
    with (_dashboard(mnist_root, tmp_path / "runs") as url, playwright_api.sync_playwright() as playwright):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
        page.goto(url)
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
        field = page.get_by_label("Title")
        field.fill(title)
        field.press("Enter")
        page.wait_for_timeout(1500)
        with page.expect_download(timeout=120_000) as download:
            page.get_by_role("button", name="Download report").click()
        saved = tmp_path / "report.html"
        download.value.save_as(saved)

        report = browser.new_page(viewport={"width": 900, "height": 1270})  # about an A4 page's proportions
        problems, requests = [], []
        report.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        report.on("pageerror", lambda error: problems.append(str(error)))
        report.on("request", lambda request: requests.append(request.url))
        report.goto(saved.as_uri())
        report.wait_for_function(f"document.querySelectorAll('.main-svg').length >= {len(MODEL_NAMES) + 7}",
                                 timeout=30_000)
        assert report.locator("h1").inner_text() == title
        assert report.locator("tr.not-evaluated").count() == 0 and report.locator("tr[data-model]").count() == len(
            MODEL_NAMES)
        assert not problems, problems
        assert [request for request in requests if not request.startswith("data:")] == [saved.as_uri()]

        folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        report.screenshot(path=str(folder / "report.png"))
        pdf = report.pdf(format="A4", print_background=True)
        pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
        assert pages >= SECTIONS, pages
        browser.close()
