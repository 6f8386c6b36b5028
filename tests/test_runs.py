"""The run store: save, list, load through the normal checkpoint API, delete; incomplete runs are never listed."""

from __future__ import annotations

import threading

import pytest
import torch

from mnist_models import TrainConfig, load_checkpoint, load_evaluation, load_mnist, train
from mnist_models.inference import predict_proba
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.serving.catalog import load_catalog, of_dataset
from mnist_models.store.records import RunInfo
from mnist_models.store.runs import delete_run, find_run, list_runs
from mnist_models.training.pipeline import save_trained


@pytest.fixture
def tiny_data(tiny_dataset):
    return load_mnist("train", tiny_dataset, download=False), load_mnist("test", tiny_dataset, download=False)


def save_run(result, test_data):
    """Save as a new run (no checkpoint named): the run and its evaluation."""
    saved = save_trained(result, test_data)
    return saved.run, saved.evaluation


def quick_result(model: str, train_data, cancel: threading.Event | None = None, epochs: int = 1):
    return train(TrainConfig.for_model(model, epochs=epochs, batch_size=16, device="cpu"), data=train_data,
                 cancel=cancel)


def test_a_saved_run_is_listed_and_loads_like_any_checkpoint(tiny_data, runs_dir):
    train_data, test_data = tiny_data
    result = quick_result("mlp", train_data)
    run, evaluation = save_run(result, test_data)
    assert (run.run_id, run.number, run.model, run.title) == ("run001-mlp", 1, "mlp", "MLP · run 1")
    assert [listed.run_id for listed in list_runs()] == ["run001-mlp"] and run.checkpoint.parent == runs_dir
    network, meta = load_checkpoint(run.checkpoint)
    assert meta.model == "mlp" and meta.run == RunInfo("run001-mlp", "MLP · run 1")
    assert meta.history == result.history and meta.cancelled is False
    assert torch.equal(torch.from_numpy(predict_proba(network, test_data[0])),
                       torch.from_numpy(predict_proba(result.network, test_data[0])))
    saved = load_evaluation(run.checkpoint)
    assert saved == evaluation and saved.checkpoint == "run001-mlp.pt"
    assert len(saved.predictions) == len(test_data[1]) and saved.trained.epochs_completed == 1


def test_runs_are_numbered_in_order_and_deleting_one_unlists_it(tiny_data):
    train_data, test_data = tiny_data
    first, _ = save_run(quick_result("mlp", train_data), test_data)
    second, _ = save_run(quick_result("cnn_basic", train_data), test_data)
    assert [run.run_id for run in list_runs()] == ["run001-mlp", "run002-cnn_basic"]
    delete_run(first.run_id)
    assert [run.run_id for run in list_runs()] == ["run002-cnn_basic"]
    assert not first.checkpoint.exists() and not first.evaluation.exists()
    delete_run(second.run_id)
    third, _ = save_run(quick_result("mlp", train_data), test_data)
    assert third.number == 3, "numbers are never reused, not even the newest deleted one's"
    with pytest.raises(KeyError, match="no saved run called 'run001-mlp'"):
        delete_run(first.run_id)
    with pytest.raises(KeyError):
        find_run("../checkpoints/cnn")


def test_a_half_written_run_is_never_listed(tiny_data, runs_dir):
    train_data, test_data = tiny_data
    complete, _ = save_run(quick_result("mlp", train_data), test_data)
    (runs_dir / "run002-cnn.pt").write_bytes(complete.checkpoint.read_bytes())  # crashed before its evaluation
    (runs_dir / ".run003-mlp.metrics.json.x1.tmp").write_text("{")  # an atomic write that never finished
    (runs_dir / ".staged-run005-mlp.pt").write_bytes(complete.checkpoint.read_bytes())  # staged, never evaluated
    (runs_dir / "notes.pt").write_bytes(b"not a run")
    (runs_dir / "run004-unknown.pt").write_bytes(b"not a registered model")
    assert [run.run_id for run in list_runs()] == ["run001-mlp"]
    assert save_run(quick_result("mlp", train_data), test_data)[0].number == 3, "run002 is taken though incomplete"
    assert not (runs_dir / ".staged-run005-mlp.pt").exists(), "the next save clears what a dead save staged"


def test_a_failed_evaluation_leaves_no_orphan_checkpoint(tiny_data, runs_dir, monkeypatch):
    train_data, test_data = tiny_data

    def out_of_memory(*args, **kwargs):
        raise MemoryError("evaluation ran out of memory")

    monkeypatch.setattr("mnist_models.training.pipeline.evaluate", out_of_memory)
    with pytest.raises(MemoryError):
        save_run(quick_result("mlp", train_data), test_data)
    assert not list(runs_dir.glob("*.pt")) and not list(runs_dir.glob("*.json")), "nothing half-saved is left"
    assert list_runs() == []


def test_a_cancelled_run_keeps_its_history_and_says_so_in_the_catalog(tiny_data):
    train_data, test_data = tiny_data
    cancel = threading.Event()
    events = []

    def stop_after_first_epoch(event):
        events.append(event)
        if event.kind == "epoch":
            cancel.set()

    result = train(TrainConfig.for_model("mlp", epochs=5, batch_size=16, device="cpu"), data=train_data,
                   progress=stop_after_first_epoch, cancel=cancel)
    run, _ = save_run(result, test_data)
    assert load_checkpoint(run.checkpoint)[1].cancelled is True
    assert load_evaluation(run.checkpoint).trained.epochs_completed == 1
    entries = of_dataset(load_catalog(), "mnist")  # the shipped Fashion-MNIST models are listed apart
    assert [entry.name for entry in entries] == [*MODEL_NAMES, run.run_id]
    assert entries[-1].title == "MLP · run 1 (cancelled)" and entries[-1].is_run and entries[-1].available
