"""Every benchmark runs as `python -m benchmarks.<name> --quick` and writes results the README's renderer reads.

The figures of a smoke run mean nothing (tiny sizes, one thread); what is checked is that each script still works
against the current library and writes what benchmarks/report.py turns into the README's tables. The ones that drive
a dashboard server (and Chromium) are in test_benchmarks_served.py, so that ./test.sh's workers (one module each at a
time) run the two halves side by side.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.report import RENDERERS
from mnist_models.paths import DATA_DIR_ENV, REPO_ROOT

pytestmark = pytest.mark.slow  # every benchmark script runs in a process of its own
SERVED = ("latency", "viewers", "load", "dashboard")  # they start a dashboard server; test_benchmarks_served.py


def check_quick_run(name: str, data_root, output_dir, monkeypatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(data_root))
    output = output_dir / f"{name}.json"
    result = subprocess.run([sys.executable, "-m", f"benchmarks.bench_{name}", "--quick", "--json", str(output)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["environment"]["logical_cpus"] >= 1
    table = RENDERERS[name](results)
    assert table.startswith("| ") and "nan" not in table


@pytest.mark.parametrize("name", [name for name in RENDERERS if name not in SERVED])
def test_a_quick_run_writes_results_that_render(name, mnist_root, tmp_path, monkeypatch):
    check_quick_run(name, mnist_root, tmp_path, monkeypatch)
