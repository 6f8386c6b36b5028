"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against the server ./run.sh starts.

Opens every page's link as the first visit of a fresh server, then every page, and checks that none shows an
exception; draws a "1" with the mouse and expects the CNN to read it, draws a "7" and opens it on Explain (every
model's maps, the RNN's rows), draws right after clearing, switches page during the first run and keeps the
selection, selects digits on the Evidence page's map, reads a photo of a number, draws with a finger on a
phone-sized screen, downloads the stakeholder report from the Overview and opens and prints it offline; then trains
a small CNN run from the Train page, watches its live progress and expects it on Compare, and runs a 3-trial
hyperparameter search of the MLP from the same page; switches the sidebar to Fashion-MNIST and sees its images and
only its models. One server and one Chromium serve the whole module.
Screenshots go to $SCREENSHOT_DIR (scripts/screenshots.sh points it at docs/screenshots for the README).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from benchmarks.common import CHROMIUM, start_dashboard, wait_until_healthy
from mnist_models.jobs.child import EVIDENCE_ENV
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.paths import RUNS_DIR_ENV, TRAINING_LOCK_ENV
from tests.test_draw_page import number_picture, png

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")]
PAGES = {"overview": "", "draw": "draw", "explain": "explain", "dataset": "dataset", "compare": "compare",
         "evidence": "evidence", "train": "train", "room": "room"}
HEADINGS = {"overview": "digit-lab", "draw": "Draw a digit", "explain": "Explain: why each model answers, and when "
            "it breaks", "dataset": "The MNIST dataset", "compare": "Compare the models",
            "evidence": "Evidence: how the models hold up", "train": "Train a model", "room": "The room's drawings"}


@contextlib.contextmanager
def _dashboard(data_root: Path, runs: Path):
    """A dashboard server started the way ./run.sh starts it (dashboard.serve), stopped on exit; yields its URL."""
    # Module-scoped servers start before the per-test settings of conftest: the runs' evidence is switched off here
    # (a run trained by a test would otherwise compute a minute of it while the server is being stopped).
    # Its own training lock too: the machine-wide default is shared with any other checkout's tests or trainings.
    runs.mkdir(parents=True, exist_ok=True)
    process, url = start_dashboard({**os.environ, "MNIST_DATA_DIR": str(data_root), RUNS_DIR_ENV: str(runs),
                                    EVIDENCE_ENV: "", TRAINING_LOCK_ENV: str(runs / "training.lock")},
                                   subprocess.PIPE)
    if not wait_until_healthy(url):
        process.kill()
        pytest.fail(f"the dashboard did not start: {process.stdout.read()}")
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(mnist_root, tmp_path_factory):
    with _dashboard(mnist_root, tmp_path_factory.mktemp("runs")) as url:
        yield url


@pytest.fixture(scope="module")
def page(server, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 2200})
    page = context.new_page()
    page.goto(server)
    page.wait_for_selector("h1", timeout=60_000)
    yield page
    context.close()


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


def test_every_page_link_works_as_the_first_visit_of_a_fresh_server(server, browser):
    """Issue 9: a fresh server's first visit to /draw showed a false "Page not found", and /overview always did.
    The module's server is fresh here: this test comes first in the module, before any page has been opened."""
    for path, name in [("draw", "draw"), ("overview", "overview"), *((PAGES[name], name) for name in PAGES)]:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{server}/{path}")
        playwright_api.expect(page.locator("h1").first).to_have_text(HEADINGS[name], timeout=60_000)
        _settle(page)
        assert page.get_by_text("Page not found").count() == 0, path
        assert page.locator('[data-testid="stException"]').count() == 0, path
        context.close()


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_without_an_exception(page, server, screenshot_dir, name):
    page.goto(f"{server}/{PAGES[name]}")
    page.wait_for_selector("h1", timeout=60_000)
    _settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stSidebarNavLink"]').count() == len(PAGES)
    page.screenshot(path=str(screenshot_dir / f"{name}.png"), full_page=True)


def _draw(page, points: list[tuple[float, float]]) -> None:
    """One pen stroke through ``points`` given as fractions of the canvas."""
    surface = page.locator("canvas.upper-canvas").first
    surface.wait_for(timeout=60_000)
    box = surface.bounding_box()
    at = [(box["x"] + box["width"] * x, box["y"] + box["height"] * y) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for point in at[1:]:
        page.mouse.move(*point, steps=10)
    page.mouse.up()


ONE = [(0.5, 0.2), (0.5, 0.8)]
SEVEN = [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)]


def _metric_of(page, title: str):
    return page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=re.compile(rf"^\s*{re.escape(title)}\s*$"))
    ).locator('[data-testid="stMetricValue"]')


def test_drawing_a_vertical_stroke_is_read_as_one(page, server, screenshot_dir):
    page.goto(f"{server}/draw")
    page.locator("canvas.upper-canvas").first.wait_for(timeout=60_000)
    _settle(page)
    _draw(page, ONE)
    playwright_api.expect(_metric_of(page, "CNN")).to_have_text("1", timeout=60_000)
    _settle(page)
    assert page.locator('[data-testid="stMetric"]').count() >= 6
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(screenshot_dir / "draw-prediction.png"), full_page=True)


def test_a_drawing_opens_in_explain_with_every_model_s_maps_and_the_rnn_s_rows(page, server, screenshot_dir):
    page.goto(f"{server}/draw")
    page.locator("canvas.upper-canvas").first.wait_for(timeout=60_000)
    _settle(page)
    _draw(page, SEVEN)
    playwright_api.expect(_metric_of(page, "CNN")).to_have_text("7", timeout=60_000)
    _settle(page)
    page.get_by_role("link", name=re.compile("Explain this digit")).click()
    playwright_api.expect(page.get_by_text("Saliency", exact=True)).to_be_visible(timeout=60_000)
    _settle(page)
    assert page.get_by_text("your drawing", exact=True).count() == 1  # the drawing came along, not a test image
    assert page.get_by_text(re.compile(r"^CNN: 7 \(")).count() == 3  # its maps in each method's row
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(screenshot_dir / "explain.png"), full_page=True)
    page.get_by_text("How each one reads it").click()
    playwright_api.expect(page.get_by_text(re.compile("RNN reads the digit one row at a time"))).to_be_visible(
        timeout=60_000)
    _settle(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1  # the RNN's row-by-row chart
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(screenshot_dir / "explain-reads.png"), full_page=True)


def test_a_stroke_made_right_after_clearing_is_read(page, server):
    """Issue 9: strokes made within 150 ms of the old Clear button were lost (it remounted the canvas)."""
    page.goto(f"{server}/draw")
    page.locator("canvas.upper-canvas").first.wait_for(timeout=60_000)
    _settle(page)
    for _ in range(3):
        _draw(page, SEVEN)
        playwright_api.expect(_metric_of(page, "CNN")).to_have_text("7", timeout=60_000)
        _settle(page)
        page.get_by_role("button", name="Reset canvas & history").click()
        _draw(page, ONE)  # at once, without waiting for the server
        playwright_api.expect(_metric_of(page, "CNN")).to_have_text("1", timeout=60_000)
        _settle(page)
        page.get_by_role("button", name="Reset canvas & history").click()
        playwright_api.expect(page.locator('[data-testid="stMetric"]')).to_have_count(0, timeout=60_000)


def test_the_selection_survives_a_page_switch_during_the_first_run(server, browser):
    """Issue 9: clicking Draw while the Overview's first run was still going wiped "Models shown" for the session."""
    for _ in range(3):
        context = browser.new_context(viewport={"width": 1400, "height": 1400})
        page = context.new_page()
        page.goto(server)
        page.locator('[data-testid="stSidebarNavLink"]', has_text="Draw").click(timeout=60_000)
        page.locator("canvas.upper-canvas").first.wait_for(timeout=60_000)
        _settle(page)
        _draw(page, ONE)
        playwright_api.expect(_metric_of(page, "CNN")).to_have_text("1", timeout=60_000)
        _settle(page)
        chips = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelectTagsContainer"] [data-tag]')
        assert chips.count() == len(MODEL_NAMES)
        assert page.locator('[data-testid="stMetric"]').count() == len(MODEL_NAMES)
        context.close()


def test_a_photo_of_a_number_is_read_with_a_box_over_each_digit(page, server, screenshot_dir):
    page.goto(f"{server}/draw")
    page.wait_for_selector("h1", timeout=60_000)
    _settle(page)
    page.get_by_text("Photo or scan of a number", exact=True).click()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        {"name": "number.png", "mimeType": "image/png", "buffer": png(number_picture("4075"))})
    table = page.locator('[data-testid="stTable"]')
    playwright_api.expect(table.get_by_role("row").filter(has_text=re.compile(r"^\s*CNN\s*4075"))).to_have_count(
        1, timeout=60_000)
    _settle(page)
    assert table.get_by_role("row").count() == 1 + len(MODEL_NAMES)
    playwright_api.expect(page.get_by_text(re.compile("^4 digits found, left to right"))).to_be_visible()
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(screenshot_dir / "draw-number.png"), full_page=True)


def _touch_stroke(page, canvas, points: list[tuple[float, float]]) -> None:
    """One finger stroke through ``points`` (fractions of the canvas), as a phone's touch screen sends it: Playwright's
    touchscreen only taps, so the events go through the DevTools protocol."""
    box = canvas.bounding_box()
    at = [(box["x"] + box["width"] * x, box["y"] + box["height"] * y) for x, y in points]
    session = page.context.new_cdp_session(page)
    session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": at[0][0], "y": at[0][1]}]})
    for (x0, y0), (x1, y1) in zip(at, at[1:], strict=False):
        for step in range(1, 11):
            session.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [
                {"x": x0 + (x1 - x0) * step / 10, "y": y0 + (y1 - y0) * step / 10}]})
    session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    session.detach()


def test_a_finger_draws_on_a_phone_and_the_answers_come_below_the_canvas(server, browser, screenshot_dir):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    page.goto(f"{server}/draw")
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for(timeout=60_000)
    _settle(page)
    _touch_stroke(page, canvas, ONE)
    playwright_api.expect(_metric_of(page, "CNN")).to_have_text("1", timeout=60_000)
    _settle(page)
    fits = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    assert page.evaluate(fits)  # no sideways scrolling of the page
    canvas_box = canvas.bounding_box()
    assert canvas_box["x"] >= 0 and canvas_box["x"] + canvas_box["width"] <= 390
    assert _metric_of(page, "CNN").bounding_box()["y"] > canvas_box["y"] + canvas_box["height"]
    assert page.locator('[data-testid="stException"]').count() == 0
    page.set_viewport_size({"width": 390, "height": 1500})  # the app scrolls inside itself: a taller screen shows more
    page.screenshot(path=str(screenshot_dir / "draw-phone.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_text("Draw a number", exact=True).click()
    page.get_by_text("Phone (340 px)", exact=True).click()
    canvas = page.locator("canvas.upper-canvas").first
    playwright_api.expect(canvas).to_have_attribute("width", re.compile(r"^(340|680)$"), timeout=60_000)
    _settle(page)
    _touch_stroke(page, canvas, [(0.25, 0.15), (0.25, 0.85)])
    _touch_stroke(page, canvas, [(0.7, 0.15), (0.7, 0.85)])
    table = page.locator('[data-testid="stTable"]')
    playwright_api.expect(table.get_by_role("row").filter(has_text=re.compile(r"^\s*CNN\s*11"))).to_have_count(
        1, timeout=60_000)
    assert page.evaluate(fits) and canvas.bounding_box()["width"] <= 390
    context.close()


def _box_select(page, chart, width: int = 80, height: int = 60) -> None:
    """Drag a box over part of a plotly chart with its Box Select tool."""
    chart.scroll_into_view_if_needed()
    chart.hover()
    chart.locator('.modebar-btn[data-title="Box Select"]').click()
    area = chart.locator(".nsewdrag").first.bounding_box()
    x, y = area["x"] + area["width"] * 0.4, area["y"] + area["height"] * 0.4
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + width, y + height, steps=10)
    page.mouse.up()


def test_the_evidence_page_shows_robustness_and_its_map_selects_digits(page, server, screenshot_dir):
    page.goto(f"{server}/evidence")
    playwright_api.expect(page.get_by_text(re.compile("^Most robust overall:"))).to_be_visible(timeout=60_000)
    _settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(screenshot_dir / "evidence.png"), full_page=True)
    page.get_by_text("Map of the digits", exact=True).click()
    playwright_api.expect(page.get_by_text(re.compile("test digits; .* misread by"))).to_be_visible(timeout=60_000)
    _settle(page)
    _box_select(page, page.locator('[data-testid="stPlotlyChart"]').last, 300, 200)  # the clusters leave gaps
    playwright_api.expect(page.get_by_text(re.compile(r"^\d+ images? picked on the map"))).to_be_visible(
        timeout=60_000)
    _settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(screenshot_dir / "evidence-map.png"), full_page=True)


def test_a_box_drawn_on_the_pca_map_shows_those_images(page, server):
    page.goto(f"{server}/dataset")
    page.wait_for_selector("h1", timeout=60_000)
    _settle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').last
    _box_select(page, chart)
    playwright_api.expect(page.get_by_text(re.compile(r"^\d+ images? picked on the map"))).to_be_visible(
        timeout=60_000)
    _settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0


REPORT_SECTIONS = 10  # objective … appendix, each printed from a new page


def test_the_overview_downloads_a_report_that_opens_offline_and_prints(server, browser, screenshot_dir, tmp_path):
    """The stakeholder report end to end: downloaded from the Overview, then opened from the file alone (nothing
    else fetched, no console error) and printed to PDF a section per page. Before any run is trained here, so that
    it holds the shipped models only."""
    title = "Digit readers for the board"
    context = browser.new_context(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
    page = context.new_page()
    page.goto(server)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
    field = page.get_by_label("Title")
    field.fill(title)
    field.press("Enter")
    page.wait_for_timeout(1500)
    with page.expect_download(timeout=120_000) as download:
        page.get_by_role("button", name="Download report").click()
    saved = tmp_path / "report.html"
    download.value.save_as(saved)

    report = context.new_page()
    report.set_viewport_size({"width": 900, "height": 1270})  # about an A4 page's proportions
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
    report.screenshot(path=str(screenshot_dir / "report.png"))
    pdf = report.pdf(format="A4", print_background=True)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages >= REPORT_SECTIONS, pages
    context.close()


def test_a_run_trained_from_the_page_shows_live_progress_and_appears_on_compare(page, server, screenshot_dir):
    page.goto(f"{server}/train")
    page.wait_for_selector("h1", timeout=60_000)
    _settle(page)
    page.get_by_label("Epochs", exact=True).fill("2")
    page.keyboard.press("Tab")
    subset = page.locator('input[type="range"][aria-label="Training images"]')
    subset.focus()
    page.keyboard.press("Home")
    for _ in range(2):
        page.keyboard.press("ArrowRight")  # 250 → 1,000 → 5,000 images: a few seconds an epoch here
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


def test_a_study_started_from_the_train_page_shows_its_trials_best_and_optuna_s_figures(page, server, screenshot_dir):
    page.goto(f"{server}/train")
    page.wait_for_selector("text=Hyperparameter search", timeout=60_000)
    _settle(page)
    page.get_by_label("Model", exact=True).click()
    page.get_by_role("option", name="MLP", exact=True).click()
    for label, value in (("Trials to add", "3"), ("Most epochs per trial", "1")):
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        _settle(page)
    page.get_by_role("button", name="Start search").click()
    page.get_by_role("button", name="Cancel search").wait_for(timeout=120_000)
    page.get_by_role("button", name="Cancel search").wait_for(state="detached", timeout=300_000)
    _settle(page)
    playwright_api.expect(page.get_by_text("Best so far")).to_be_visible(timeout=60_000)
    table = page.locator('[data-testid="stDataFrame"]').filter(has_text="validation accuracy")
    playwright_api.expect(table).to_be_visible()
    assert page.get_by_role("button", name="Save the best trial as a run").is_visible()
    assert page.locator('[data-testid="stException"]').count() == 0
    page.locator(".js-plotly-plot").nth(2).wait_for(timeout=60_000)  # history, importances, parallel coordinates
    page.screenshot(path=str(screenshot_dir / "train-search.png"), full_page=True)


def test_the_sidebar_s_dataset_switch_shows_fashion_mnist_and_only_its_models(page, server, screenshot_dir):
    page.goto(f"{server}/dataset")
    page.wait_for_selector("h1", timeout=60_000)
    _settle(page)
    page.locator('[data-testid="stSidebar"]').get_by_text("Fashion-MNIST", exact=True).click()
    _settle(page)
    playwright_api.expect(page.get_by_role("heading", name="The Fashion-MNIST dataset")).to_be_visible(timeout=60_000)
    playwright_api.expect(page.get_by_text("Ankle boot").first).to_be_visible()
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(screenshot_dir / "dataset-fashion.png"), full_page=True)
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Overview").click()
    _settle(page)
    leaderboard = page.locator('[data-testid="stDataFrame"]').first
    playwright_api.expect(leaderboard).to_contain_text("CNN · Fashion-MNIST", timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(screenshot_dir / "overview-fashion.png"), full_page=True)
