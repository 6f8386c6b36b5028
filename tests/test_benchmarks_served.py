"""The benchmarks that drive a dashboard server, smoke-run as in test_benchmarks.py (a module of their own, so that
the two halves run side by side under ./test.sh)."""

from __future__ import annotations

import pytest

from benchmarks.report import RENDERERS
from tests.test_benchmarks import SERVED, check_quick_run

pytestmark = pytest.mark.slow  # each starts a dashboard server, most with Chromium


def test_every_served_benchmark_is_a_benchmark():
    assert set(SERVED) <= set(RENDERERS)


@pytest.mark.parametrize("name", SERVED)
def test_a_quick_run_of_a_served_benchmark_writes_results_that_render(name, mnist_root, tmp_path, monkeypatch):
    check_quick_run(name, mnist_root, tmp_path, monkeypatch)
