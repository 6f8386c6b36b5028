"""Speed of the Explain page's work: every model's attributions for one digit, and a slider change to every answer.

1. Attributions (library, server-side): for each of ``--digits`` test images, every shipped model's three maps for its
   predicted digit (Integrated Gradients with 32 steps, Saliency, Grad-CAM where the model has a convolution), timed
   per model and per digit in total, uncached (what the first visitor to explain a digit waits for; the page caches
   each result for the next). The goal: the total within 1.5 s, median.
2. Sliders (the page, server-side): the Explain page run under Streamlit's AppTest on a test image, with the what-if
   rotation slider and the adversarial ε slider (FGSM) moved to ``--slider-changes`` new values each; the page's own
   timer (from the fragment's start to its last element, DIGIT_LAB_TIMING_LOG) gives the time for all answers. The
   goal: 150 ms, median.
3. Sliders (the browser, with --browser): the same two sliders moved with the keyboard in headless Chromium against
   a dashboard started as ./run.sh starts it, from the key press to the new answers on screen (the changed digit's
   new picture; for ε, the new count of flipped models with the script finished). On these 2 cores the browser and
   its driver take CPU from the server, so this figure is an upper bound for a visitor on their own machine.

Torch runs on one thread, as in the dashboard's server. Run from the repository root:

    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_explain --browser \
        --json benchmarks/results/explain.json
    MNIST_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.bench_explain --quick
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import environment, format_table, print_environment, write_json
from mnist_models.data import load_mnist
from mnist_models.explain import ATTRIBUTION_METHODS, NoConvolutionError, attribute
from mnist_models.inference import predict_proba
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.paths import REPO_ROOT
from mnist_models.store.checkpoints import load_checkpoint
from mnist_models.timing import percentiles

ATTRIBUTION_GOAL_MS = 1500.0
SLIDER_GOAL_MS = 150.0
EPSILON_START = 0.1  # the ε slider's default on the page
ROTATE_STEPS = 18  # from the rotation's default, 0°, to its end, 90°, in steps of 5°


def time_attributions(networks: dict, digits: np.ndarray) -> dict:
    """Per digit: each model's three maps for its own answer; the first digit warms up and is not counted."""
    per_model: dict[str, list[float]] = {name: [] for name in networks}
    totals = []
    for position, digit in enumerate(digits):
        total = 0.0
        for name, network in networks.items():
            target = int(predict_proba(network, digit)[0].argmax())
            started = time.perf_counter()
            for method in ATTRIBUTION_METHODS:
                try:
                    attribute(network, digit, method, target)
                except NoConvolutionError:
                    pass
            elapsed = (time.perf_counter() - started) * 1000
            total += elapsed
            if position:
                per_model[name].append(elapsed)
        if position:
            totals.append(total)
    return {"per_model_ms": {name: percentiles(values).to_dict() for name, values in per_model.items()},
            "all_models_ms": percentiles(totals).to_dict(), "digits": len(totals), "goal_ms": ATTRIBUTION_GOAL_MS}


def time_sliders(changes: int) -> dict:
    """The page's own timer for what-if and ε slider changes, under AppTest on test image #0."""
    from streamlit.testing.v1 import AppTest

    log = Path(tempfile.mkdtemp()) / "timing.jsonl"
    os.environ["DIGIT_LAB_TIMING_LOG"] = str(log)
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=300).run()
    app.switch_page("pages/explain_page.py").run()
    results = {}
    for view, label, values in (("What if…", "Rotate (°)", np.linspace(-90, 90, changes + 1).round() // 5 * 5),
                                ("Adversarial attack", "ε (largest change per pixel, 0–1)",
                                 np.linspace(0.01, 0.5, changes + 1).round(2))):
        next(radio for radio in app.radio if view in radio.options).set_value(view).run()
        slider = next(slider for slider in app.slider if slider.label == label)
        log.write_text("")
        for value in values:
            slider.set_value(type(slider.value)(value)).run()
            if app.exception:
                raise RuntimeError(app.exception[0].value)
        event = "explain_what_if" if view == "What if…" else "explain_adversarial"
        samples = [line["ms"] for line in map(json.loads, log.read_text().splitlines()) if line["event"] == event]
        results[event] = {**percentiles(samples[1:]).to_dict(), "changes": len(samples) - 1, "goal_ms": SLIDER_GOAL_MS}
    return results


FINISHED = "document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'"
CHANGED_DIGIT = """() => [...document.querySelectorAll('[data-testid="stImage"]')]
    .find(image => image.innerText.includes("the changed digit"))?.querySelector("img")?.src ?? null"""


def time_browser_sliders(changes: int) -> dict:
    """Key press → new answers on screen, in headless Chromium, for the what-if rotation and the ε slider."""
    import subprocess

    from playwright.sync_api import sync_playwright

    from benchmarks.common import CHROMIUM, CHROMIUM_FLAGS, start_dashboard, wait_until_healthy

    log = Path(tempfile.mkdtemp()) / "timing.jsonl"
    process, url = start_dashboard({**os.environ, "DIGIT_LAB_TIMING_LOG": str(log)}, subprocess.DEVNULL)
    try:
        if not wait_until_healthy(url, 180):
            raise RuntimeError("the dashboard did not start")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.goto(f"{url}/explain")
            page.wait_for_function(f"() => {FINISHED} && document.querySelector('h1')", timeout=180_000)
            results = {}
            for view, position, event in (("What if…", 0, "explain_what_if"),
                                          ("Adversarial attack", 0, "explain_adversarial")):
                page.get_by_text(view, exact=True).click()
                page.wait_for_timeout(500)
                page.wait_for_function(f"() => {FINISHED}", timeout=180_000)
                slider = page.get_by_role("slider").nth(position)
                samples = []
                for change in range(changes):
                    before = page.evaluate(CHANGED_DIGIT)
                    slider.focus()
                    started = time.perf_counter()
                    # the rotation goes to its end (90°, 18 steps) and back, so every change shows a new picture
                    page.keyboard.press("ArrowLeft" if event == "explain_what_if" and (change // ROTATE_STEPS) % 2
                                        else "ArrowRight")
                    if event == "explain_what_if":
                        page.wait_for_function(f"before => {FINISHED} && ({CHANGED_DIGIT})() !== before", arg=before,
                                               timeout=60_000, polling="raf")
                    else:
                        expected = f"At ε = {EPSILON_START + 0.01 * (change + 1):.2f},"
                        page.wait_for_function(
                            f"text => {FINISHED} && [...document.querySelectorAll('[data-testid=\"stMarkdown\"]')]"
                            f".some(m => m.innerText.startsWith(text))", arg=expected, timeout=60_000, polling="raf")
                    samples.append((time.perf_counter() - started) * 1000)
                server = [line["ms"] for line in map(json.loads, log.read_text().splitlines())
                          if line["event"] == event][-len(samples):]
                results[event] = {**percentiles(samples[1:]).to_dict(), "changes": len(samples) - 1,
                                  "server_ms": percentiles(server[1:]).to_dict(), "goal_ms": SLIDER_GOAL_MS}
            browser.close()
        return results
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=21, help="test images explained (the first warms up)")
    parser.add_argument("--slider-changes", type=int, default=20, help="values each slider is moved to")
    parser.add_argument("--browser", action="store_true", help="also time the sliders in headless Chromium")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 digits, 3 slider values")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    digits_count, changes = (3, 3) if args.quick else (args.digits, args.slider_changes)
    torch.set_num_threads(1)
    info = environment()
    print_environment(info)

    images, _ = load_mnist("test", download=False)
    digits = images[:digits_count].numpy()
    networks = {name: load_checkpoint(name)[0] for name in MODEL_NAMES}
    attributions = time_attributions(networks, digits)
    print(format_table(["model", "3 maps p50 (ms)", "p95 (ms)"],
                       [[name, f"{figures['p50_ms']:.0f}", f"{figures['p95_ms']:.0f}"]
                        for name, figures in attributions["per_model_ms"].items()]))
    overall = attributions["all_models_ms"]
    print(f"all {len(networks)} models, one digit: p50 {overall['p50_ms']:.0f} ms, p95 {overall['p95_ms']:.0f} ms "
          f"(goal {ATTRIBUTION_GOAL_MS:.0f} ms)")

    sliders = time_sliders(changes)
    for event, figures in sliders.items():
        print(f"{event}: p50 {figures['p50_ms']:.0f} ms, p95 {figures['p95_ms']:.0f} ms over {figures['changes']} "
              f"changes (goal {SLIDER_GOAL_MS:.0f} ms)")
    browser = time_browser_sliders(changes) if args.browser else None
    for event, figures in (browser or {}).items():
        print(f"{event} in the browser: p50 {figures['p50_ms']:.0f} ms, p95 {figures['p95_ms']:.0f} ms over "
              f"{figures['changes']} changes; the server's part p50 {figures['server_ms']['p50_ms']:.0f} ms")
    if args.json:
        write_json(args.json, {"environment": info, "models": list(networks), "attributions": attributions,
                               "sliders": sliders, "browser_sliders": browser})


if __name__ == "__main__":
    main()
