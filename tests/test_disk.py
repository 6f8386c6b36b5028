"""A runs or checkpoint folder that cannot take the files: read-only, too small, or filled up while training. Each is
refused before training with a sentence that says what and where, or, when the disk fills meanwhile, fails with one,
leaving no half-written file. The folders are small tmpfs mounts (root only; skipped with the reason otherwise)."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from pathlib import Path

import pytest

from mnist_models import TrainConfig, load_mnist
from mnist_models.cli import EXIT_NO_ROOM, main
from mnist_models.jobs.worker import TrainingWorker, shared_worker
from mnist_models.paths import DATA_DIR_ENV, REPO_ROOT, RUNS_DIR_ENV
from mnist_models.store.files import StorageError, check_room, write_json
from mnist_models.training import pipeline
from mnist_models.training.locking import training_lock_holder
from mnist_models.training.pipeline import storage_needed, train_and_save

pytestmark = pytest.mark.slow  # trainings fill small folders, through the worker too

MOUNTS = itertools.count()


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, read_only=False) → a fresh tmpfs folder of that size, unmounted after the test."""
    mounted: list[Path] = []

    def mount(size: str, read_only: bool = False) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        folder = tmp_path / f"tmpfs{next(MOUNTS)}"
        folder.mkdir()
        options = f"size={size},mode=0777" + (",ro" if read_only else "")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                                text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def config(model: str = "cnn") -> TrainConfig:
    return TrainConfig.for_model(model, epochs=1, batch_size=16, device="cpu")


def test_the_room_a_training_needs_follows_the_models_size():
    cnn, mobilenet = storage_needed(config("cnn")), storage_needed(config("mobilenet"))
    assert 5_000_000 < cnn < 15_000_000, "CNN: 225k parameters, AdamW's two tensors per parameter, twice, plus more"
    assert mobilenet > 3 * cnn
    sgd = TrainConfig.for_model("cnn", optimizer="sgd")
    assert storage_needed(sgd) < cnn, "SGD keeps one tensor per parameter, Adam two"


def test_a_read_only_runs_folder_is_refused_before_anything_starts(tmpfs, tiny_dataset):
    folder = tmpfs("1M", read_only=True)
    worker = TrainingWorker()
    with pytest.raises(StorageError, match=rf"^Cannot write in {folder} \(read-only file system\): nothing can be "
                                           rf"saved there\. Make it writable or choose another folder\.$"):
        worker.submit([config()], runs_dir=folder, data_dir=tiny_dataset)
    assert not worker.busy and worker.snapshot() == [] and training_lock_holder() is None


@pytest.mark.parametrize(("read_only", "message"), [
    (True, r"error: Cannot write in {folder} \(read-only file system\)"),
    (False, r"error: Not enough room in {folder}: training cnn needs about [\d.]+ MB there and [\d.]+ KB is free\. "
            r"Free some space or choose another folder\."),
])
def test_the_command_line_refuses_an_output_folder_that_cannot_take_the_files(read_only, message, tmpfs,
                                                                              tiny_dataset, capsys):
    folder = tmpfs("64k", read_only=read_only)
    assert main(["train", "--model", "cnn", "--epochs", "1", "--data-dir", str(tiny_dataset),
                 "--output-dir", str(folder)]) == EXIT_NO_ROOM
    err = capsys.readouterr().err
    assert "Traceback" not in err and "epoch 1/1" not in err, "refused before training"
    assert re.search(message.format(folder=folder), err), err
    assert list(folder.iterdir()) == []


def test_a_disk_that_fills_during_training_fails_with_a_sentence_and_no_partial_file(tmpfs, tiny_dataset,
                                                                                   monkeypatch):
    """The room was there when training started (another program took it since): torch's own report, "[enforce
    fail at inline_container.cc] . unexpected pos", becomes a sentence naming the folder and its free space."""
    folder = tmpfs("1M")
    monkeypatch.setattr(pipeline, "storage_needed", lambda config: 0)
    data = load_mnist("train", tiny_dataset), load_mnist("test", tiny_dataset)
    with pytest.raises(StorageError, match=rf"^{folder} ran out of space: mlp\.pt\.partial did not fit \([\d.,]+ "
                                           rf"(MB|KB|bytes) free without it; nothing half-written was left\)\. Free "
                                           rf"some space or choose another folder\.$"):
        train_and_save(config("mlp"), *data, checkpoint=folder / "mlp.pt")
    assert list(folder.iterdir()) == []


def test_a_full_disk_under_a_small_file_is_a_sentence_too(tmpfs):
    folder = tmpfs("64k")
    with pytest.raises(StorageError, match=rf"^{folder} ran out of space: results\.json did not fit"):
        write_json(folder / "results.json", {"values": list(range(100_000))})
    assert list(folder.iterdir()) == []
    check_room(folder, 1000, "a small file")  # what fits is not refused
    with pytest.raises(StorageError, match=r"a big file needs about 1\.0 MB there and [\d.]+ KB is free"):
        check_room(folder, 1_000_000, "a big file")


def test_the_train_page_says_why_it_cannot_start_in_a_read_only_runs_folder(tmpfs, mnist_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    folder = tmpfs("1M", read_only=True)
    monkeypatch.setenv(RUNS_DIR_ENV, str(folder))
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_root))
    before = shared_worker().snapshot()  # jobs of tests that ran earlier in this process
    app = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    app.switch_page("pages/train_page.py").run()
    app.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert [error.value for error in app.error] == [f"Not started: Cannot write in {folder} (read-only file system): "
                                                    f"nothing can be saved there. Make it writable or choose another "
                                                    f"folder."]
    assert not shared_worker().busy and shared_worker().snapshot() == before, "no job was started"
