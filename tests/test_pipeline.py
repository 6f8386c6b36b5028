"""The one train → save → evaluate pipeline: a new checkpoint and its evaluation replace the previous pair only when
both are complete, so an interruption at any step leaves the previous pair exactly as it was."""

from __future__ import annotations

import os
import shutil
import threading

import pytest
import torch

from mnist_models import TrainConfig, load_checkpoint, load_evaluation, load_mnist, train
from mnist_models.cli import main
from mnist_models.serving.catalog import load_catalog
from mnist_models.store import checkpoints as checkpoint_store
from mnist_models.store.checkpoints import evaluation_path, finish_pending
from mnist_models.training import pipeline
from mnist_models.training.pipeline import save_trained, train_and_save
from mnist_models.training.recovery import IncompleteKind, complete, find_incomplete


@pytest.fixture
def tiny_data(tiny_dataset):
    return load_mnist("train", tiny_dataset, download=False), load_mnist("test", tiny_dataset, download=False)


@pytest.fixture
def previous_pair(tmp_path, tiny_data):
    """checkpoints/mlp.pt and its evaluation, as an earlier training left them; returns (path, their bytes)."""
    train_data, test_data = tiny_data
    path = tmp_path / "checkpoints" / "mlp.pt"
    save_trained(train(TrainConfig.for_model("mlp", epochs=1, batch_size=16, seed=1), data=train_data), test_data,
                 checkpoint=path)
    return path, (path.read_bytes(), evaluation_path(path).read_bytes())


def new_result(train_data):
    return train(TrainConfig.for_model("mlp", epochs=1, batch_size=16, seed=2), data=train_data)


def assert_untouched(path, previous) -> None:
    assert (path.read_bytes(), evaluation_path(path).read_bytes()) == previous
    assert sorted(item.name for item in path.parent.iterdir()) == ["mlp.metrics.json", "mlp.pt"], "staged files left"


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize(("step", "target", "failure", "raised"), [
    ("writing the checkpoint", (torch, "save"), interrupt, KeyboardInterrupt),
    ("evaluating", (pipeline, "evaluate"), interrupt, KeyboardInterrupt),
    ("writing the evaluation", (checkpoint_store, "write_json"), disk_full, OSError),
])
def test_a_save_that_fails_at_any_step_leaves_the_previous_pair(step, target, failure, raised, previous_pair,
                                                                  tiny_data, monkeypatch):
    path, previous = previous_pair
    result = new_result(tiny_data[0])
    monkeypatch.setattr(*target, failure)
    with pytest.raises(raised):
        save_trained(result, tiny_data[1], checkpoint=path)
    assert_untouched(path, previous)


def test_interrupted_right_after_the_staged_evaluation_is_written(previous_pair, tiny_data, monkeypatch):
    """The staged pair was complete but not yet renamed: both staged files go, the previous pair stays."""
    path, previous = previous_pair
    result = new_result(tiny_data[0])
    real_write_json = checkpoint_store.write_json

    def written_then_interrupted(*args, **kwargs):
        real_write_json(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_store, "write_json", written_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_trained(result, tiny_data[1], checkpoint=path)
    assert_untouched(path, previous)


def test_a_crash_between_the_two_renames_is_seen_as_stale_and_finished_by_the_next_writer(previous_pair, tiny_data,
                                                                                        monkeypatch):
    """New weights beside the old evaluation: readers refuse that evaluation (it names other weights) and move
    nothing; the next save completes the interrupted pair before its own."""
    path, previous = previous_pair
    result = new_result(tiny_data[0])
    real_replace, calls = os.replace, []

    def crash_before_the_fourth_rename(source, destination):
        calls.append(destination)  # two staged writes, then the checkpoint's rename, then the evaluation's
        if len(calls) == 4:
            raise SystemExit("power cut")  # not an exception the code may clean up after
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", crash_before_the_fourth_rename)
    with pytest.raises(SystemExit):
        save_trained(result, tiny_data[1], checkpoint=path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert path.read_bytes() != previous[0] and evaluation_path(path).read_bytes() == previous[1]
    staged = sorted(item.name for item in path.parent.iterdir())

    entry = next(entry for entry in load_catalog(path.parent) if entry.name == "mlp")
    assert entry.available and entry.evaluation is None
    assert "describes other weights than the checkpoint beside it" in entry.evaluation_error
    assert sorted(item.name for item in path.parent.iterdir()) == staged, "a reader moved files"

    finish_pending(path)
    _, meta = load_checkpoint(path)
    assert load_evaluation(path, meta=meta).weights_id == meta.weights_id
    assert sorted(item.name for item in path.parent.iterdir()) == ["mlp.metrics.json", "mlp.pt"]


def test_a_completed_save_replaces_both_and_describes_the_new_weights(previous_pair, tiny_data):
    path, previous = previous_pair
    saved = save_trained(new_result(tiny_data[0]), tiny_data[1], checkpoint=path)
    assert path.read_bytes() != previous[0] and evaluation_path(path).read_bytes() != previous[1]
    assert saved.evaluation.checkpoint == "mlp.pt" and saved.evaluation.size_bytes == path.stat().st_size
    assert saved.meta.training["seed"] == 2 and load_evaluation(path) == saved.evaluation


def test_a_training_cancelled_before_its_first_epoch_writes_nothing(tiny_data, tmp_path, runs_dir):
    class Cancelled:
        def is_set(self) -> bool:
            return True

    config = TrainConfig.for_model("mlp", epochs=2, batch_size=16)
    result, saved = train_and_save(config, *tiny_data, checkpoint=tmp_path / "mlp.pt", cancel=Cancelled())
    assert result.cancelled and result.epochs_completed == 0 and saved is None
    assert not any(tmp_path.glob("*mlp*")) and not runs_dir.exists(), "not even a run number was taken"


class Killed(BaseException):
    """Stands for kill -9: nothing may clean up after it (train only catches KeyboardInterrupt)."""


def killed_after(epochs: int):
    """A progress callback that 'kills' the training at the first batch report after ``epochs`` finished epochs."""
    def progress(event):
        if event.kind == "batch" and event.epoch == epochs + 1:
            raise Killed
    return progress


@pytest.mark.parametrize("model", ["mlp", "cnn_dropout"])  # cnn_dropout: dropout and augmentation draw random numbers
def test_a_killed_training_resumes_from_its_last_epoch_to_the_same_weights(model, tiny_data, tmp_path):
    config = TrainConfig.for_model(model, epochs=3, batch_size=8, device="cpu", schedule="onecycle")
    _, uninterrupted = train_and_save(config, *tiny_data, checkpoint=tmp_path / "whole" / f"{model}.pt")

    path = tmp_path / "killed" / f"{model}.pt"
    with pytest.raises(Killed):
        train_and_save(config, *tiny_data, checkpoint=path, progress=killed_after(2))
    partial = checkpoint_store.partial_path(path)
    assert sorted(item.name for item in path.parent.iterdir()) == [partial.name], "only the progress file is left"
    saved_progress = checkpoint_store.read_partial(partial)
    assert saved_progress.meta.epochs_completed == 2 and saved_progress.meta.training["epochs"] == 3

    events = []
    result, resumed = pipeline.resume_training(partial, *tiny_data, progress=events.append)
    assert not result.cancelled and [event.epoch for event in events if event.kind == "epoch"] == [3]
    assert resumed.checkpoint == path and not partial.exists() and resumed.meta.epochs_completed == 3
    assert resumed.meta.history["val_loss"] == uninterrupted.meta.history["val_loss"]
    resumed_weights, whole_weights = load_checkpoint(path)[0].state_dict(), uninterrupted_weights(uninterrupted)
    assert all(torch.equal(resumed_weights[key], whole_weights[key]) for key in whole_weights)


def uninterrupted_weights(saved):
    return load_checkpoint(saved.checkpoint)[0].state_dict()


def test_completing_a_killed_training_saves_its_finished_epochs_as_a_cancelled_run(tiny_data, tmp_path, runs_dir):
    config = TrainConfig.for_model("mlp", epochs=3, batch_size=8, device="cpu")
    path = tmp_path / "checkpoints" / "mlp.pt"
    with pytest.raises(Killed):
        train_and_save(config, *tiny_data, checkpoint=path, progress=killed_after(1))
    partial = checkpoint_store.partial_path(path)
    cut_short = partial.with_name(f".{partial.name}.x1y2z3.tmp")  # the next epoch's write when the power went
    cut_short.write_bytes(partial.read_bytes()[:100])
    (item,) = find_incomplete(checkpoint_dir=path.parent)
    saved = complete(item, tiny_data[1])
    assert saved.run.run_id == "run001-mlp" and saved.checkpoint.parent == runs_dir
    assert saved.meta.cancelled is True and saved.meta.epochs_completed == 1
    assert load_evaluation(saved.checkpoint, meta=load_checkpoint(saved.checkpoint)[1]).trained.epochs_completed == 1
    assert not any(path.parent.iterdir()), "the named checkpoint was never written, and the cut-short write is gone"


def test_a_cancelled_training_of_a_named_checkpoint_becomes_a_run_and_leaves_the_checkpoint(previous_pair, tiny_data,
                                                                                          runs_dir):
    path, previous = previous_pair
    cancel = threading.Event()

    def cancel_in_epoch_two(event):  # seen at epoch 2's first batch
        if event.kind == "epoch" and event.epoch == 1:
            cancel.set()

    config = TrainConfig.for_model("mlp", epochs=3, batch_size=8, device="cpu")
    result, saved = train_and_save(config, *tiny_data, checkpoint=path, progress=cancel_in_epoch_two, cancel=cancel)
    assert result.cancelled and result.epochs_completed == 1
    assert saved.run.run_id == "run001-mlp" and saved.meta.cancelled and saved.checkpoint.parent == runs_dir
    assert_untouched(path, previous)


def test_a_save_killed_while_evaluating_leaves_a_staged_checkpoint_that_info_names_and_recover_deletes(
        previous_pair, capsys):
    """kill -9 between writing the staged checkpoint and its staged evaluation: nothing can clean up, so the hidden
    file is listed as an unfinished save (delete only), and `recover complete --all` leaves it without failing."""
    path, previous = previous_pair
    staged = checkpoint_store.staged_path(path)
    shutil.copy(path, staged)  # what the save had written when it was killed
    cut_short = path.with_name(f".{path.name}.x1y2z3.tmp")  # a write of the checkpoint that never got renamed
    cut_short.write_bytes(b"half")

    (item,) = find_incomplete(checkpoint_dir=path.parent)
    assert (item.kind, item.name, item.path, item.actions) == (IncompleteKind.UNFINISHED_SAVE, ".staged-mlp", staged,
                                                               ("delete",))
    assert main(["info", "--checkpoint-dir", str(path.parent)]) == 0
    assert ".staged-mlp" in capsys.readouterr().out
    assert main(["recover", "complete", "--all", "--checkpoint-dir", str(path.parent)]) == 0
    assert ".staged-mlp: left as it is" in capsys.readouterr().err and staged.exists()
    assert main(["recover", "delete", ".staged-mlp", "--checkpoint-dir", str(path.parent)]) == 0
    assert find_incomplete(checkpoint_dir=path.parent) == []
    assert_untouched(path, previous)
