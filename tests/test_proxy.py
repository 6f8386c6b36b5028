"""Two dashboard replicas behind nginx, as scripts/serve_replicas.sh starts them, in Debian's Chromium on 127.0.0.1:
a drawing is read through the proxy on each replica (picked with the routing cookie, checked by nginx's header and by
the replica's own name in the sidebar), replica 2's Train page sends the visitor to replica 1's, and Ctrl-C (SIGINT
to the script's process group, as a terminal sends it) stops the proxy and both replicas."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from benchmarks.common import CHROMIUM, free_port, wait_until_healthy
from dashboard.replica import REPLICA_ENV, TRAINING_ENV
from mnist_models.jobs.child import EVIDENCE_ENV
from mnist_models.paths import REPO_ROOT, RUNS_DIR_ENV, TRAINING_LOCK_ENV
from tests.test_browser import ONE, _draw, _metric_of, _settle

playwright_api = pytest.importorskip("playwright.sync_api")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"),
              pytest.mark.skipif(not os.access(NGINX, os.X_OK),
                                 reason="needs nginx (apt-get install nginx-light; scripts/setup.sh --dev does it)")]
SCRIPT = REPO_ROOT / "scripts" / "serve_replicas.sh"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    """The script running; yields (proxy URL, {replica: port}, its process); stopped with SIGINT, which the last test
    checks. Drawing needs no dataset: an empty data folder spares both replicas' warm-up the dataset's statistics."""
    folder = tmp_path_factory.mktemp("replicas")
    ports = {"proxy": free_port(), "1": free_port(), "2": free_port()}
    env = {key: value for key, value in os.environ.items() if key not in (TRAINING_ENV, REPLICA_ENV)}
    env.update({"MNIST_DATA_DIR": str(folder / "no-data"), RUNS_DIR_ENV: str(folder / "runs"), EVIDENCE_ENV: "",
                TRAINING_LOCK_ENV: str(folder / "training.lock"), "NO_SETUP": "1", "PORT": str(ports["proxy"]),
                "REPLICA_PORTS": f"{ports['1']} {ports['2']}"})
    log = folder / "serve_replicas.log"
    process = subprocess.Popen([str(SCRIPT), "--server.fileWatcherType", "none"], cwd=REPO_ROOT, env=env,
                               stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{ports['proxy']}"
    try:
        if not all(wait_until_healthy(f"http://127.0.0.1:{ports[name]}", 120) for name in ("1", "2", "proxy")):
            pytest.fail(f"the replicas did not start: {log.read_text()[-3000:]}")
        yield url, ports, process
    finally:
        if process.poll() is None:  # a test failed before the last one stopped it
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _visit(browser, url: str, replica: str, path: str):
    """A visitor whose routing cookie names ``replica``; their page at ``path`` and the first response's upstream."""
    context = browser.new_context(viewport={"width": 1400, "height": 1400})
    context.add_cookies([{"name": "digit_lab_replica", "value": replica, "url": url}])
    page = context.new_page()
    response = page.goto(url + path)
    return page, response.headers.get("x-digit-lab-upstream")


@pytest.mark.parametrize("replica", ["1", "2"])
def test_a_drawing_is_read_through_the_proxy_on_each_replica(replicas, browser, replica):
    url, ports, _ = replicas
    page, upstream = _visit(browser, url, replica, "/draw")
    assert upstream == f"127.0.0.1:{ports[replica]}"
    page.locator("canvas.upper-canvas").first.wait_for(timeout=60_000)
    _settle(page)
    # The session (its websocket) runs on that replica, not only the first request.
    playwright_api.expect(page.get_by_text(f"Served by replica {replica}")).to_be_visible(timeout=30_000)
    _draw(page, ONE)
    playwright_api.expect(_metric_of(page, "CNN")).to_have_text("1", timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.context.close()


def test_the_second_replica_sends_training_to_the_first(replicas, browser):
    url, ports, _ = replicas
    page, _ = _visit(browser, url, "2", "/train")
    link = page.get_by_role("link", name="its Train page")
    link.wait_for(timeout=60_000)
    assert page.get_by_role("button", name="Start training").count() == 0
    with page.context.expect_page() as opened:  # Streamlit opens a markdown link in a new tab
        link.click()
    page = opened.value
    playwright_api.expect(page.get_by_role("button", name="Start training")).to_be_visible(timeout=60_000)
    playwright_api.expect(page.get_by_text("Served by replica 1")).to_be_visible(timeout=30_000)
    assert page.url == f"{url}/train"
    page.context.close()


def test_ctrl_c_stops_the_proxy_and_both_replicas(replicas):
    _, ports, process = replicas
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)
    deadline = time.monotonic() + 10
    while any(_listening(port) for port in ports.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [name for name, port in ports.items() if _listening(port)]
