import json
import subprocess
import sys

import pytest

from mnist_models import MODEL_NAMES, TrainConfig, load_checkpoint, load_metrics, load_mnist, train
from mnist_models.cli import main
from mnist_models.paths import REPO_ROOT
from mnist_models.runs import save_run


def test_info_lists_every_model_and_the_dataset(capsys, tiny_dataset):
    assert main(["info", "--data-dir", str(tiny_dataset)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in MODEL_NAMES) and "MNIST: found" in out


def test_info_lists_the_saved_runs(capsys, tiny_dataset):
    train_data, test_data = load_mnist("train", tiny_dataset), load_mnist("test", tiny_dataset)
    result = train(TrainConfig.for_model("mlp", epochs=1, batch_size=16, device="cpu"), data=train_data)
    save_run(result, test_data)
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
    model, meta = load_checkpoint(out_dir / "mlp.pt")
    assert meta["architecture"]["hidden_sizes"] == [32] and meta["training"]["epochs"] == 1
    assert load_metrics("mlp", out_dir)["metrics"]["count"] == 20
    assert "epoch 1/1" in capsys.readouterr().err
    assert main(["evaluate", "--model", "mlp", "--json", "--no-latency", "--data-dir", str(tiny_dataset),
                 "--checkpoint-dir", str(out_dir)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"mlp"} and "predictions" not in summary["mlp"]


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
    with pytest.raises(SystemExit) as raised:
        main(["train", "--model", "resnet"])
    assert raised.value.code == 2


def test_module_entry_point_runs_from_any_directory(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mnist_models", "report"], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""}, timeout=120)
    assert result.returncode == 0 and "| `cnn` |" in result.stdout
