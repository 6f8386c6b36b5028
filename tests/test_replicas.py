"""Several dashboard processes behind a proxy: the replica that does not train says where training runs (AppTest)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.replica import REPLICA_ENV, TRAINING_ENV, TrainingPlace, training_place
from mnist_models.paths import REPO_ROOT
from mnist_models.training.locking import acquire_training_lock

TRAIN_PAGE = "pages/train_page.py"


def open_train_page() -> AppTest:
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    app.switch_page(TRAIN_PAGE).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


@pytest.mark.parametrize(("value", "place"), [
    ("", TrainingPlace(here=True)), ("on", TrainingPlace(here=True)), ("OFF", TrainingPlace(here=False)),
    ("/replica/1/train", TrainingPlace(here=False, url="/replica/1/train")),
    ("https://digits.example/train", TrainingPlace(here=False, url="https://digits.example/train")),
])
def test_the_setting_says_where_training_runs(monkeypatch, value, place):
    monkeypatch.setenv(TRAINING_ENV, value)
    assert training_place() == place


def test_a_mistyped_setting_is_refused(monkeypatch):
    monkeypatch.setenv(TRAINING_ENV, "replica1")
    with pytest.raises(ValueError, match=TRAINING_ENV):
        training_place()


def test_a_replica_that_does_not_train_links_to_the_one_that_does(monkeypatch):
    monkeypatch.setenv(TRAINING_ENV, "/replica/1/train")
    monkeypatch.setenv(REPLICA_ENV, "2")
    app = open_train_page()
    notes = [info.value for info in app.info]
    assert any("[its Train page](/replica/1/train)" in note for note in notes), notes
    assert not [button for button in app.button if button.key in ("one_click", "FormSubmitter:train_form-Start "
                                                                                "training")]
    assert [subheader.value for subheader in app.subheader] == ["Saved runs"]
    assert "Served by replica `2`" in [caption.value for caption in app.sidebar.caption]


def test_the_training_replica_offers_training(monkeypatch, mnist_root):
    monkeypatch.setenv(TRAINING_ENV, "on")
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_root))
    app = open_train_page()
    assert app.button(key="one_click") is not None and not app.button(key="one_click").disabled
    assert not [info.value for info in app.info if "not offered" in info.value]


@pytest.mark.slow
def test_the_training_lock_holds_across_server_processes():
    """What keeps one training at a time across replicas, whatever DIGIT_LAB_TRAINING says: another process (a second
    replica, the command line) is refused while this one holds the lock, and accepted once it is released."""
    attempt = [sys.executable, "-c", "from mnist_models.training.locking import acquire_training_lock as take; "
                                     "take('replica 2')"]
    with acquire_training_lock("replica 1's training worker"):
        refused = subprocess.run(attempt, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and "TrainingBusy" in refused.stderr
        assert "replica 1's training worker" in refused.stderr
    assert subprocess.run(attempt, cwd=REPO_ROOT, timeout=120).returncode == 0
