"""What the benchmark scripts share: the machine they ran on, tables, the results file, a canvas stroke.

Latency samples are summarised by ``mnist_models.timing.percentiles``, the helper the evaluation uses too.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from PIL import Image, ImageDraw

from mnist_models.paths import REPO_ROOT
from mnist_models.store.files import write_json as write_json_atomically

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium: Playwright's own browser download fails on these machines."""
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"]


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice, one per core; 1 with "
                                                    "--quick, which keeps smoke runs short on a machine busy with "
                                                    "other work)")


def apply_threads(threads: int | None, quick: bool) -> None:
    """Set torch's thread count; competing for cores with other jobs, several threads wait on each other."""
    threads = threads or (1 if quick else None)
    if threads:
        torch.set_num_threads(threads)


def cpu_name() -> str:
    """The CPU's model name, so figures from different machines are never compared unawares."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Versions, CPU, threads and the load when the run started: a busy machine explains slow figures."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": [round(value, 2) for value in os.getloadavg()],
        "argv": sys.argv[1:],  # the options this run was given, shown beside its figures
    }


def print_environment(info: dict[str, Any]) -> None:
    load = ", ".join(f"{value:.2f}" for value in info["load_average_1_5_15"])
    print(f"torch {info['torch']} · {info['cpu']} · {info['logical_cpus']} logical CPUs · "
          f"{info['torch_threads']} torch threads · load average {load}")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned first column, right-aligned others; cells are printed as given."""
    cells = [list(map(str, headers))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(width) if column == 0 else cell.rjust(width)
                         for column, (cell, width) in enumerate(zip(row, widths, strict=True)))

    return "\n".join([line(cells[0]), "  ".join("-" * width for width in widths), *map(line, cells[1:])])


def format_markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(map(str, headers)) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """The results file, indented for people and written atomically, so an interrupted run keeps the old one."""
    write_json_atomically(path, payload, indent=2)
    print(f"\nwrote {path}")


def canvas_stroke(x0: int, y0: int, x1: int, y1: int) -> dict:
    """The component state the canvas sends after a white stroke on its 280×280 black surface."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    ImageDraw.Draw(image).line([(x0, y0), (x1, y1)], fill=(255, 255, 255, 255), width=20)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"drawing": {"raw": {"objects": [{"type": "path"}], "background": "#000000"}, "data": url}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_dashboard(env: dict[str, str], stdout: Any, *, start_new_session: bool = False
                    ) -> tuple[subprocess.Popen, str]:
    """The dashboard started the way ./run.sh starts it (``python -m dashboard.serve``) on a free loopback port, with
    ``env`` and its output (stderr included) to ``stdout``: the process and its URL. See ``wait_until_healthy``."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dashboard.serve", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO_ROOT, env=env, stdout=stdout, stderr=subprocess.STDOUT, text=True,
        start_new_session=start_new_session)
    return process, f"http://127.0.0.1:{port}"


def wait_until_healthy(url: str, seconds: float = 180) -> bool:
    """Whether the server at ``url`` answered its health check within ``seconds`` (its warm-up runs first: on two
    busy cores, with the test suite's other worker beside it, that can take over a minute)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return True
        except OSError:
            time.sleep(0.3)
    return False
