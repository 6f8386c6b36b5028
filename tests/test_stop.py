"""Stopping a training from outside, as a server's or a terminal's signals do: SIGTERM and Ctrl-C end it cleanly with
its finished epochs saved as a cancelled run; after kill -9 what it left is listed, and can be completed, resumed or
deleted. Each training runs in a child process of the test, on a generated dataset large enough that an epoch takes
a while."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import write_idx_dataset

from mnist_models import load_checkpoint, load_evaluation
from mnist_models.cli import EXIT_INTERRUPTED, main
from mnist_models.jobs.orders import JobAction, JobState
from mnist_models.jobs.worker import TrainingWorker
from mnist_models.paths import REPO_ROOT
from mnist_models.store.runs import list_runs
from mnist_models.training.config import TrainConfig
from mnist_models.training.locking import training_lock_holder
from mnist_models.training.recovery import IncompleteKind, find_incomplete

pytestmark = pytest.mark.slow  # training processes are signalled and killed, and their runs recovered

TIMEOUT = 300
EPOCHS = ["--model", "cnn", "--epochs", "3", "--batch-size", "16"]


@pytest.fixture(scope="module")
def slow_dataset(tmp_path_factory) -> Path:
    """3,000 training images: 150 batches of 16 per epoch (after the validation split), so a signal sent at epoch 2's
    first progress report always lands mid-epoch; 1,000 test images, so that saving takes a moment too."""
    return write_idx_dataset(tmp_path_factory.mktemp("slow"), train_count=3000, test_count=1000)


class Child:
    """A process started by the test, its stderr collected as it comes (the progress bar writes no newlines)."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        self.output = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := self.process.stderr.read1(4096):
            self.output += chunk

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while text not in self.text:
            assert self.process.poll() is None, f"ended early ({self.process.returncode}):\n{self.text}"
            assert time.monotonic() < deadline, f"never saw {text!r}:\n{self.text}"
            time.sleep(0.01)

    def finish(self) -> int:
        code = self.process.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        return code


def digit_lab(*args: str) -> Child:
    return Child([sys.executable, "-m", "mnist_models", *args])


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_epoch_keeps_the_finished_epoch_as_a_cancelled_run(stop, slow_dataset, tmp_path, runs_dir):
    output = tmp_path / "checkpoints"
    training = digit_lab("train", *EPOCHS, "--data-dir", str(slow_dataset), "--output-dir", str(output))
    training.wait_for("epoch 2/3")
    training.process.send_signal(stop)
    assert training.finish() == EXIT_INTERRUPTED, training.text
    assert f"stopped by {stop.name} after 1 epoch(s), saved as run001-cnn (cancelled" in training.text
    assert "Traceback" not in training.text and "terminate called" not in training.text
    network, meta = load_checkpoint(runs_dir / "run001-cnn.pt")
    assert meta.cancelled is True and meta.epochs_completed == 1 and len(meta.history["epoch"]) == 1
    assert load_evaluation(runs_dir / "run001-cnn.pt", meta=meta).metrics.count == 1000
    assert files_in(runs_dir) == [".last-run", "run001-cnn.metrics.json", "run001-cnn.pt"], "no litter"
    assert files_in(output) == [], "a cancelled training never writes the named checkpoint"


@pytest.fixture(scope="module")
def killed_once(slow_dataset, tmp_path_factory) -> Path:
    """A `digit-lab train` killed with SIGKILL during its second epoch; the checkpoint folder it was writing to."""
    output = tmp_path_factory.mktemp("killed") / "checkpoints"
    training = digit_lab("train", *EPOCHS, "--data-dir", str(slow_dataset), "--output-dir", str(output))
    training.wait_for("epoch 2/3")
    training.process.kill()
    assert training.finish() == -signal.SIGKILL
    assert files_in(output) == ["cnn.pt.partial"]
    return output


@pytest.fixture
def killed(killed_once, tmp_path) -> Path:
    """What the killed training left, copied for one test to complete, resume or delete (the files are all that
    is left of it: one kill serves every test)."""
    return Path(shutil.copytree(killed_once, tmp_path / "checkpoints"))


def test_after_kill_9_info_lists_the_interrupted_training(killed, capsys):
    assert main(["info", "--json", "--checkpoint-dir", str(killed)]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["incomplete"]
    assert (listed["name"], listed["kind"], listed["epochs_completed"], listed["epochs"]) == ("cnn", "partial", 1, 3)
    assert listed["actions"] == ["complete", "resume", "delete"]
    assert main(["info", "--checkpoint-dir", str(killed)]) == 0
    out = capsys.readouterr().out
    assert "Interrupted trainings: 1" in out and "CNN (cnn.pt): interrupted after 1 of 3 epoch(s)" in out


def test_after_kill_9_completing_saves_a_loadable_cancelled_run(killed, slow_dataset, runs_dir, capsys):
    assert main(["recover", "complete", "cnn", "--checkpoint-dir", str(killed), "--data-dir", str(slow_dataset)]) == 0
    assert "cnn: saved as " in capsys.readouterr().err
    (run,) = list_runs()
    network, meta = load_checkpoint(run.checkpoint)
    assert run.run_id == "run001-cnn" and meta.cancelled and meta.epochs_completed == 1
    assert load_evaluation(run.checkpoint, meta=meta).trained.epochs_completed == 1
    assert files_in(killed) == [] and find_incomplete(checkpoint_dir=killed) == []


def test_after_kill_9_resuming_finishes_the_training_where_it_was_going(killed, slow_dataset, runs_dir):
    resumed = digit_lab("recover", "resume", "cnn", "--checkpoint-dir", str(killed), "--data-dir", str(slow_dataset))
    assert resumed.finish() == 0, resumed.text
    assert "epoch 1/3" not in resumed.text and "epoch 3/3" in resumed.text, "it trains only the epochs left"
    _, meta = load_checkpoint(killed / "cnn.pt")
    assert meta.epochs_completed == 3 and not meta.cancelled and meta.history["epoch"] == [1, 2, 3]
    assert files_in(killed) == ["cnn.metrics.json", "cnn.pt"] and list_runs() == []


def test_after_kill_9_deleting_leaves_no_file(killed, capsys):
    assert main(["recover", "delete", "--all", "--checkpoint-dir", str(killed)]) == 0
    assert files_in(killed) == [] and find_incomplete(checkpoint_dir=killed) == []
    assert main(["recover", "delete", "cnn", "--checkpoint-dir", str(killed)]) == 2
    assert "no interrupted training called 'cnn' (there are: none)" in capsys.readouterr().err


def test_a_run_saved_without_its_evaluation_is_listed_and_can_be_evaluated(tiny_dataset, runs_dir, capsys):
    assert main(["train", "--model", "mlp", "--epochs", "1", "--data-dir", str(tiny_dataset),
                 "--output-dir", str(runs_dir)]) == 0
    (runs_dir / "mlp.pt").rename(runs_dir / "run004-mlp.pt")  # an orphan: a run's weights, no evaluation
    (runs_dir / "mlp.metrics.json").unlink()
    (orphan,) = find_incomplete()
    assert (orphan.name, orphan.kind, orphan.actions) == ("run004-mlp", IncompleteKind.UNEVALUATED,
                                                         ("complete", "delete"))
    assert list_runs() == []
    assert main(["recover", "complete", "run004-mlp", "--data-dir", str(tiny_dataset)]) == 0
    assert [run.run_id for run in list_runs()] == ["run004-mlp"] and find_incomplete() == []


def worker_config() -> TrainConfig:
    return TrainConfig.for_model("cnn", epochs=2, batch_size=16, device="cpu")


def wait_for_epoch_two(worker: TrainingWorker) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not any(event.epoch == 2 for event in worker.snapshot()[0].events):
        assert time.monotonic() < deadline and worker.busy, worker.snapshot()[0].log
        time.sleep(0.01)


def test_sigterm_to_the_dashboards_training_process_saves_a_cancelled_run(slow_dataset, runs_dir):
    worker = TrainingWorker()
    worker.submit([worker_config(), worker_config()], data_dir=slow_dataset)
    wait_for_epoch_two(worker)
    os.kill(worker.training_process, signal.SIGTERM)
    assert worker.wait(TIMEOUT)
    stopped, queued = worker.snapshot()
    assert stopped.state is JobState.CANCELLED and stopped.run_id == "run001-cnn" and stopped.error is None
    assert [event.epoch for event in stopped.epoch_events] == [1]
    assert queued.state is JobState.CANCELLED and queued.log == ["cancelled before it started"]
    assert load_checkpoint(runs_dir / "run001-cnn.pt")[1].epochs_completed == 1
    assert files_in(runs_dir) == [".last-run", "run001-cnn.metrics.json", "run001-cnn.pt"]


def test_a_killed_training_process_is_reported_and_its_run_recovered_from_the_worker(slow_dataset, runs_dir):
    worker = TrainingWorker()
    worker.submit([worker_config()], data_dir=slow_dataset)
    wait_for_epoch_two(worker)
    os.kill(worker.training_process, signal.SIGKILL)
    assert worker.wait(TIMEOUT)
    (job,) = worker.snapshot()
    assert job.state is JobState.FAILED and "killed (SIGKILL)" in job.error
    assert training_lock_holder() is None, "the lock went with the process"
    (interrupted,) = find_incomplete()
    assert (interrupted.name, interrupted.epochs_completed) == ("run001-cnn", 1)
    assert interrupted.title == "CNN · run 1" and list_runs() == []

    worker.recover(interrupted, JobAction.RESUME, data_dir=slow_dataset)
    assert worker.wait(TIMEOUT)
    (job,) = worker.snapshot()
    assert job.state is JobState.FINISHED and job.run_id == "run001-cnn", job.log
    assert [event.epoch for event in job.epoch_events] == [2] and job.log[0].startswith("resuming CNN · run 1")
    assert files_in(runs_dir) == [".last-run", "run001-cnn.metrics.json", "run001-cnn.pt"]


SERVER = """
import sys, time
from mnist_models.training.config import TrainConfig
from mnist_models.jobs.worker import TrainingWorker
worker = TrainingWorker()
worker.submit([TrainConfig.for_model("cnn", epochs=3, batch_size=16, device="cpu")], data_dir=sys.argv[1])
while not any(event.epoch == 2 for event in worker.snapshot()[0].events):
    time.sleep(0.01)
print("epoch 2 started", file=sys.stderr, flush=True)
time.sleep(600)
"""


def test_a_server_killed_outright_leaves_its_training_process_to_save_under_the_lock(slow_dataset, runs_dir):
    """kill -9 of the dashboard: its training process notices (its reports go nowhere), stops, and saves the
    finished epoch as a cancelled run, holding the machine-wide lock until it is done."""
    server = Child([sys.executable, "-c", SERVER, str(slow_dataset)])
    server.wait_for("epoch 2 started")
    server.process.kill()
    assert server.process.wait(TIMEOUT) == -signal.SIGKILL  # its stderr stays open: the training process has it
    assert training_lock_holder() == f"the dashboard's training worker, pid {server.process.pid}", "still held"
    deadline = time.monotonic() + TIMEOUT
    while training_lock_holder() is not None:
        assert time.monotonic() < deadline, "the training process never finished"
        time.sleep(0.05)
    (run,) = list_runs()
    _, meta = load_checkpoint(run.checkpoint)
    assert meta.cancelled and meta.epochs_completed == 1 and load_evaluation(run.checkpoint, meta=meta)
    assert files_in(runs_dir) == [".last-run", "run001-cnn.metrics.json", "run001-cnn.pt"]
