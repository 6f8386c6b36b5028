"""The warm-up fills the caches the pages read first, and a failing step never stops the server from starting."""

from __future__ import annotations

import gc

import pytest

from dashboard import cache, warmup

pytestmark = pytest.mark.slow  # the warm-up starts the training processes and fits the maps


def test_warm_up_fills_the_caches_every_session_then_reads(mnist_root, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_root))
    cache._catalog.clear()
    steps = warmup.warm_up()
    assert set(steps) == {"imports", "models", "training processes", "digit map", "dataset", "pca map"}
    calls = []
    monkeypatch.setattr(cache, "load_catalog", lambda *args: calls.append(args) or [])
    assert cache.catalog() and not calls, "the catalog was loaded again instead of read from the warmed cache"


def test_a_failing_step_is_skipped_and_the_others_still_run(mnist_root, monkeypatch, capsys):
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_root))

    def broken():
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cache, "catalog", broken)
    steps = warmup.warm_up()
    assert "models" not in steps and "digit map" not in steps
    assert {"imports", "training processes", "dataset", "pca map"} <= set(steps)
    assert "warm-up step 'models' skipped: disk on fire" in capsys.readouterr().out


def test_the_server_freezes_what_it_loaded_before_it_serves(monkeypatch):
    """Streamlit's full collection after every run must not walk the libraries (it held answers back 240-300 ms)."""
    from dashboard import serve

    started = []
    monkeypatch.setattr(serve, "warm_up", dict)
    monkeypatch.setattr(serve.cli, "main", lambda arguments, prog_name: started.append(arguments))
    try:
        serve.main(["--server.headless", "true"])
        assert started and started[0][-2:] == ["--server.headless", "true"]
        assert gc.get_freeze_count() > 100_000  # torch, streamlit and the rest, not a handful of objects
    finally:
        gc.unfreeze()
