import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mnist_models import MODEL_NAMES, TrainConfig, load_checkpoint, load_evaluation, load_mnist, train
from mnist_models.cli import main
from mnist_models.data import read_idx
from mnist_models.evidence import CORRUPTIONS
from mnist_models.feature_space import load_feature_map, map_path
from mnist_models.paths import CHECKPOINT_DIR, REPO_ROOT
from mnist_models.store.checkpoints import evaluation_path, save_checkpoint
from mnist_models.store.evidence_records import evidence_path, load_evidence
from mnist_models.store.room_db import IDX_LABELS
from mnist_models.training import pipeline
from mnist_models.training.locking import acquire_training_lock
from mnist_models.training.pipeline import save_trained
from tests.conftest import write_idx_dataset
from tests.test_room_store import write_picture_tree


def test_info_lists_every_model_and_the_dataset(capsys, tiny_dataset):
    assert main(["info", "--data-dir", str(tiny_dataset)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in MODEL_NAMES) and "MNIST: found" in out


def test_info_lists_the_saved_runs(capsys, tiny_dataset):
    train_data, test_data = load_mnist("train", tiny_dataset), load_mnist("test", tiny_dataset)
    result = train(TrainConfig.for_model("mlp", epochs=1, batch_size=16, device="cpu"), data=train_data)
    save_trained(result, test_data)
    assert main(["info", "--json", "--data-dir", str(tiny_dataset)]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert run["id"] == "run001-mlp" and run["status"].startswith("test accuracy ")
    assert main(["info", "--data-dir", str(tiny_dataset)]) == 0
    assert "Saved runs (the Train page's) in " in capsys.readouterr().out


def test_info_json_reports_a_missing_dataset(capsys, tmp_path):
    assert main(["info", "--json", "--data-dir", str(tmp_path), "--checkpoint-dir", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "not found" in info["dataset"] and all("unavailable" in row["status"] for row in info["models"])


def test_train_then_evaluate_writes_a_checkpoint_and_results(capsys, tiny_dataset, tmp_path):
    out_dir = tmp_path / "ckpt"
    code = main(["train", "--model", "mlp", "--epochs", "1", "--batch-size", "16", "--data-dir", str(tiny_dataset),
                 "--output-dir", str(out_dir), "--arch", "hidden_sizes=[32]"])
    assert code == 0
    _, meta = load_checkpoint(out_dir / "mlp.pt")
    assert meta.architecture["hidden_sizes"] == [32] and meta.training["epochs"] == 1
    assert load_evaluation("mlp", out_dir).metrics.count == 20
    assert "epoch 1/1" in capsys.readouterr().err
    assert main(["evaluate", "--model", "mlp", "--json", "--no-latency", "--no-evidence", "--data-dir",
                 str(tiny_dataset), "--checkpoint-dir", str(out_dir)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"mlp"} and "predictions" not in summary["mlp"]
    assert not evidence_path(out_dir / "mlp.pt").exists()


@pytest.mark.slow
def test_evaluate_computes_the_evidence_and_redoes_one_part_keeping_the_others(capsys, tiny_dataset, tmp_path):
    out_dir = tmp_path / "ckpt"
    assert main(["train", "--model", "mlp", "--epochs", "1", "--batch-size", "16", "--data-dir", str(tiny_dataset),
                 "--output-dir", str(out_dir)]) == 0
    common = ["evaluate", "--model", "mlp", "--no-latency", "--data-dir", str(tiny_dataset), "--checkpoint-dir",
              str(out_dir)]
    evaluation_file = evaluation_path(out_dir / "mlp.pt")
    before = evaluation_file.read_bytes()
    assert main([*common, "--only", "robustness"]) == 0
    assert evaluation_file.read_bytes() == before  # --only leaves the evaluation alone
    evidence = load_evidence(evidence_path(out_dir / "mlp.pt"))
    assert set(evidence.robustness) == set(CORRUPTIONS) and evidence.calibration is None
    assert "mlp          robustness: 35/35" in capsys.readouterr().err
    assert main([*common, "--only", "calibration", "--only", "map"]) == 0
    both = load_evidence(evidence_path(out_dir / "mlp.pt"))
    assert both.robustness == evidence.robustness and both.calibration is not None and both.selective is not None
    assert load_feature_map(map_path(out_dir / "mlp.pt")).coordinates.shape == (20, 2)
    with pytest.raises(SystemExit):
        main([*common, "--only", "astrology"])
    assert "invalid choice: 'astrology'" in capsys.readouterr().err


def test_a_named_recipe_sets_what_is_not_given_and_an_option_overrides_it(tiny_dataset, tmp_path):
    common = ["train", "--model", "mlp", "--recipe", "fast", "--data-dir", str(tiny_dataset), "--output-dir"]
    assert main([*common, str(tmp_path / "fast")]) == 0
    _, meta = load_checkpoint(tmp_path / "fast" / "mlp.pt")
    assert meta.training["epochs"] == 2 and meta.epochs_completed == 2 and meta.training["lr"] == 3e-3
    assert main([*common, str(tmp_path / "one"), "--epochs", "1"]) == 0
    _, meta = load_checkpoint(tmp_path / "one" / "mlp.pt")
    assert meta.training["epochs"] == 1 and meta.training["lr"] == 3e-3


def test_ctrl_c_during_evaluation_keeps_the_previous_pair_and_the_finished_epochs(capsys, tiny_dataset, tmp_path,
                                                                                  monkeypatch):
    out_dir = tmp_path / "ckpt"
    args = ["train", "--model", "mlp", "--epochs", "1", "--data-dir", str(tiny_dataset), "--output-dir", str(out_dir)]
    assert main(args) == 0
    previous = (out_dir / "mlp.pt").read_bytes(), evaluation_path(out_dir / "mlp.pt").read_bytes()

    def interrupted(*arguments, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "evaluate", interrupted)
    assert main([*args, "--seed", "5"]) == 130
    assert ((out_dir / "mlp.pt").read_bytes(), evaluation_path(out_dir / "mlp.pt").read_bytes()) == previous
    assert sorted(path.name for path in out_dir.iterdir()) == ["mlp.metrics.json", "mlp.pt", "mlp.pt.partial"]
    err = capsys.readouterr().err
    assert "mlp.pt and its evaluation (if any) are unchanged" in err
    assert "`digit-lab recover complete mlp` saves them" in err
    assert main(["recover", "delete", "mlp", "--checkpoint-dir", str(out_dir)]) == 0
    assert sorted(path.name for path in out_dir.iterdir()) == ["mlp.metrics.json", "mlp.pt"]


def test_a_full_disk_fails_that_model_with_exit_code_1_and_keeps_the_previous_pair(capsys, tiny_dataset, tmp_path,
                                                                                   monkeypatch):
    out_dir = tmp_path / "ckpt"
    args = ["train", "--model", "mlp", "--epochs", "1", "--data-dir", str(tiny_dataset), "--output-dir", str(out_dir)]
    assert main(args) == 0
    previous = (out_dir / "mlp.pt").read_bytes(), evaluation_path(out_dir / "mlp.pt").read_bytes()

    def disk_full(*arguments, **options):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mnist_models.store.checkpoints.write_json", disk_full)
    assert main([*args, "--seed", "5"]) == 1
    assert "mlp: failed: [Errno 28] No space left on device" in capsys.readouterr().err
    assert ((out_dir / "mlp.pt").read_bytes(), evaluation_path(out_dir / "mlp.pt").read_bytes()) == previous


def test_evaluate_refuses_while_something_trains(capsys, tiny_dataset, tmp_path):
    with acquire_training_lock("a test's training"):
        code = main(["evaluate", "--no-latency", "--data-dir", str(tiny_dataset), "--checkpoint-dir", str(tmp_path)])
    assert code == 75 and "a test's training" in capsys.readouterr().err


def test_info_shows_a_checkpoint_with_minimal_metadata_as_unknown(capsys, tmp_path):
    folder = tmp_path / "checkpoints"
    shutil.copytree(CHECKPOINT_DIR, folder)
    network, _ = load_checkpoint("cnn")
    save_checkpoint(folder / "cnn.pt", network, {"model": "cnn"})
    assert main(["info", "--json", "--checkpoint-dir", str(folder)]) == 0
    status = {row["name"]: row["status"] for row in json.loads(capsys.readouterr().out)["models"]}
    assert status["cnn"].startswith("trained unknown epochs, date unknown, test accuracy ")
    assert status["mlp"].startswith("trained 5 epochs, ")


def test_missing_data_is_a_clear_error_with_exit_code_2(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.MNIST.mirrors", ["http://127.0.0.1:9/"])
    assert main(["train", "--model", "cnn", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: MNIST was not found") and "Traceback" not in err


def test_unavailable_imagenet_weights_fail_that_model_with_exit_code_1(capsys, tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.setattr("torch.hub.download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    code = main(["train", "--model", "mobilenet", "--epochs", "1", "--data-dir", str(tiny_dataset),
                 "--output-dir", str(tmp_path / "out")])
    assert code == 1 and "--weights none" in capsys.readouterr().err
    assert not (tmp_path / "out" / "mobilenet.pt").exists()


def test_bad_usage_exits_2():
    """An architecture the registry does not hold is refused before anything loads or trains."""
    with pytest.raises(SystemExit) as raised:
        main(["train", "--model", "transformer"])
    assert raised.value.code == 2


def test_train_dataset_fashion_saves_a_fashion_checkpoint_evaluated_on_its_test_split(capsys, tiny_dataset, tmp_path):
    """The tiny Fashion-MNIST beside the tiny MNIST has 30 test images, MNIST's 20: the count says which was used."""
    write_idx_dataset(tiny_dataset, train_count=80, test_count=30, seed=1, folder="FashionMNIST")
    out_dir = tmp_path / "ckpt"
    assert main(["train", "--model", "mlp", "--dataset", "fashion", "--epochs", "1", "--batch-size", "16",
                 "--train-subset", "40", "--data-dir", str(tiny_dataset), "--output-dir", str(out_dir)]) == 0
    assert "training mlp on Fashion-MNIST" in capsys.readouterr().err
    assert not (out_dir / "mlp.pt").exists()
    _, meta = load_checkpoint(out_dir / "fashion-mlp.pt")
    assert meta.dataset["name"] == "fashion" and meta.training["dataset"] == "fashion"
    assert meta.training["train_subset"] == 40
    assert load_evaluation("fashion-mlp", out_dir).metrics.count == 30
    assert main(["evaluate", "--dataset", "fashion", "--json", "--no-latency", "--no-evidence", "--data-dir",
                 str(tiny_dataset), "--checkpoint-dir", str(out_dir)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"fashion-mlp"} and summary["fashion-mlp"]["metrics"]["count"] == 30


def test_an_unknown_dataset_exits_2(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["train", "--model", "cnn", "--dataset", "cifar"])
    assert raised.value.code == 2 and "invalid choice: 'cifar'" in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point_runs_from_any_directory(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mnist_models", "report"], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""}, timeout=120)
    assert result.returncode == 0 and "| `cnn` |" in result.stdout


def test_room_imports_labelled_pictures_counts_them_and_exports_the_training_set(capsys, tmp_path):
    database = f"sqlite:///{tmp_path / 'room.sqlite'}"
    write_picture_tree(tmp_path / "pictures")
    assert main(["room", "import", str(tmp_path / "pictures"), "--db", database, "--session", "curator"]) == 0
    err = capsys.readouterr().err
    assert "imported 2 picture(s)" in err and "skipped readme.txt: not in a folder named by its digit" in err
    assert main(["room", "stats", "--db", database]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 drawing(s) in ") and "by status: kept 2, held 0, reviewed 0" in out
    assert "by input: canvas 0, upload 0, camera 0, import 2" in out and "1 1, 2 0" in out

    assert main(["room", "export", "--idx", str(tmp_path / "idx"), "--db", database]) == 0
    assert "exported 0 reviewed drawing(s)" in capsys.readouterr().err  # nothing reviewed yet
    assert read_idx(tmp_path / "idx" / IDX_LABELS).tolist() == []
    assert main(["room", "export", "--npz", str(tmp_path / "room.npz"), "--include-kept", "--db", database]) == 0
    with np.load(tmp_path / "room.npz") as exported:
        assert sorted(exported["labels"].tolist()) == [1, 7] and set(exported["sessions"].tolist()) == {"curator"}


def test_room_says_why_a_database_cannot_be_used_and_export_needs_a_target(capsys, tmp_path):
    missing = tmp_path / "nowhere" / "room.sqlite"
    assert main(["room", "stats", "--db", f"sqlite:///{missing}"]) == 1
    assert f"error: The room's database {missing} cannot be opened" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_code:
        main(["room", "export", "--db", f"sqlite:///{tmp_path / 'room.sqlite'}"])
    assert exit_code.value.code == 2
