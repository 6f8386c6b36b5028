"""Shared fixtures: the real MNIST when configured (skip otherwise), and a tiny IDX dataset written per test."""

from __future__ import annotations

import os

# One torch thread per process, set before torch is imported, and inherited by every server, training process and
# benchmark a test starts: the suite runs several processes per core, and torch's default of one spinning thread per
# core in each of them made the others wait (test_stop and test_train_page side by side: 141 s, 107 s with this).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DIGIT_LAB_TRAINING_THREADS", "1")  # devices.THREADS_ENV, spelled out: importing it loads torch

from pathlib import Path

import numpy as np
import pytest

from mnist_models.data import dataset_available, idx_bytes
from mnist_models.jobs.child import EVIDENCE_ENV
from mnist_models.paths import RUNS_DIR_ENV, TRAINING_LOCK_ENV, resolve_data_root


def write_idx_dataset(root: Path, train_count: int = 60, test_count: int = 20, seed: int = 0, folder: str = "MNIST"
                      ) -> Path:
    """Write the four IDX files (torchvision's layout, under ``folder``: MNIST's, or e.g. FashionMNIST) with random
    pictures, for tests that need no real data."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train_count), ("t10k", test_count)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return root


@pytest.fixture(autouse=True)
def runs_dir(tmp_path: Path, monkeypatch) -> Path:
    """Every test gets its own empty runs folder, so nothing is written into (or read from) the repository's runs/,
    and its own training lock, so a dashboard training on this machine does not make the tests wait or fail. Runs
    trained through the worker skip their evidence (a minute of robustness curves each), except where a test asks."""
    folder = tmp_path / "runs"
    monkeypatch.setenv(RUNS_DIR_ENV, str(folder))
    monkeypatch.setenv(EVIDENCE_ENV, "")
    monkeypatch.setenv(TRAINING_LOCK_ENV, str(tmp_path / "training.lock"))
    return folder


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_idx_dataset(tmp_path / "tiny")


@pytest.fixture(scope="session")
def fashion_root(mnist_root) -> Path:
    """The data root when Fashion-MNIST can be read there or where its system package installs it; skip otherwise."""
    if not dataset_available(mnist_root, "fashion"):
        pytest.skip("Fashion-MNIST not found (apt-get install dataset-fashion-mnist; scripts/setup.sh does it where "
                    "apt is available)")
    return mnist_root


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The real MNIST root from MNIST_DATA_DIR (CI points it at ../shared/data); tests needing it skip without it."""
    root = resolve_data_root()
    if not dataset_available(root):
        pytest.skip(f"real MNIST not found under {root} (set MNIST_DATA_DIR to a folder holding MNIST/raw)")
    return root


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright, one per test module (the browser tests skip without either)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    from benchmarks.common import CHROMIUM, CHROMIUM_FLAGS

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()

