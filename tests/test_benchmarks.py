"""Every benchmark runs as `python -m benchmarks.<name> --quick` and writes results the README's renderer reads.

The figures of a smoke run mean nothing (tiny sizes, one thread); what is checked is that each script still works
against the current library and writes what benchmarks/report.py turns into the README's tables.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.report import RENDERERS
from mnist_models.paths import DATA_DIR_ENV, REPO_ROOT

pytestmark = pytest.mark.slow  # every benchmark script runs in a process of its own, some with a server and Chromium


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.xdist_group(f"benchmark-{name}"))
                                  for name in RENDERERS])
def test_a_quick_run_writes_results_that_render(name, mnist_root, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    output = tmp_path / f"{name}.json"
    result = subprocess.run([sys.executable, "-m", f"benchmarks.bench_{name}", "--quick", "--json", str(output)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["environment"]["logical_cpus"] >= 1
    table = RENDERERS[name](results)
    assert table.startswith("| ") and "nan" not in table
