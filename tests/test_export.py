"""ONNX export: the graph takes 0..1 pictures and returns probabilities, as torch computes them; it names its
checkpoint; the cached file is reused until the weights change; the command; and the sentence without the extra."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_models.cli import main
from mnist_models.data import load_mnist
from mnist_models.export import (
    EXPORT_VERSION,
    INPUT_NAME,
    OUTPUT_NAME,
    compare_with_torch,
    export_onnx,
    file_sha256,
    is_current,
    onnx_file_of,
    onnx_path_for,
    onnx_probabilities,
    read_identity,
)
from mnist_models.extras import MissingExtra
from mnist_models.inference import predict_proba
from mnist_models.models.registry import MODEL_NAMES
from mnist_models.paths import CHECKPOINT_DIR
from mnist_models.store.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from mnist_models.store.records import RECORD_VERSION

onnx = pytest.importorskip("onnx", reason="the export extra (pip install 'digit-lab[export]') is not installed")
pytest.importorskip("onnxruntime", reason="the export extra (pip install 'digit-lab[export]') is not installed")

AGREEMENT, PROBABILITY_TOLERANCE = 0.9999, 1e-4  # the parity every export must reach against torch


def shipped_copy(name: str, folder: Path) -> Path:
    """A copy of a shipped checkpoint in ``folder``, so that its export is cached there, not in checkpoints/."""
    if not (CHECKPOINT_DIR / f"{name}.pt").is_file():
        pytest.skip(f"no shipped checkpoint for {name}")
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(CHECKPOINT_DIR / f"{name}.pt", folder))


def random_pictures(count: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(count, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_an_export_names_its_checkpoint_and_answers_as_torch_does(name, tmp_path, mnist_root):
    checkpoint = shipped_copy(name, tmp_path)
    exported = onnx_path_for(checkpoint)
    assert exported == tmp_path / f"{name}.onnx"

    _, meta = read_checkpoint(checkpoint)
    identity = read_identity(exported)
    assert {key: identity[key] for key in ("model", "dataset", "record_format_version", "checkpoint_sha256",
                                           "export_version")} == {
        "model": name, "dataset": "mnist", "record_format_version": str(RECORD_VERSION),
        "checkpoint_sha256": file_sha256(checkpoint), "export_version": str(EXPORT_VERSION)}
    assert identity["created"][:4].isdigit() and identity.get("weights_id") == meta.weights_id

    graph = onnx.load(exported).graph
    (images,), (probabilities,) = graph.input, graph.output
    assert (images.name, probabilities.name) == (INPUT_NAME, OUTPUT_NAME)
    batch, *picture = images.type.tensor_type.shape.dim
    assert batch.dim_param and [dim.dim_value for dim in picture] == [1, 28, 28]  # any batch size, one 28×28 gray

    parity = compare_with_torch(checkpoint, exported, load_mnist("test", mnist_root)[0][:300])
    assert parity.agreement == 1.0 and parity.max_difference <= PROBABILITY_TOLERANCE, parity


def test_a_model_trained_on_fashion_mnist_carries_its_own_normalisation(tmp_path):
    checkpoint = shipped_copy("fashion-cnn", tmp_path)
    exported = onnx_path_for(checkpoint)
    assert read_identity(exported)["dataset"] == "fashion"
    network, _ = load_checkpoint(checkpoint)
    pictures = random_pictures()  # the graph's arithmetic, not its accuracy, is compared: any pictures do
    assert np.abs(onnx_probabilities(exported, pictures) - predict_proba(network, pictures)).max() <= (
        PROBABILITY_TOLERANCE)


def test_the_cached_file_is_kept_until_the_weights_change_or_it_is_damaged(tmp_path):
    checkpoint = shipped_copy("mlp", tmp_path)
    exported = onnx_path_for(checkpoint)
    first = exported.stat().st_mtime_ns
    assert onnx_path_for(checkpoint) == exported and exported.stat().st_mtime_ns == first  # not exported again

    network, meta = load_checkpoint(checkpoint)
    with torch.no_grad():
        next(network.parameters()).mul_(0.5)
    save_checkpoint(checkpoint, network, meta)  # new weights under the same name
    assert onnx_path_for(checkpoint) == exported and exported.stat().st_mtime_ns != first
    assert read_identity(exported)["checkpoint_sha256"] == file_sha256(checkpoint)
    pictures = random_pictures(16)
    assert np.abs(onnx_probabilities(exported, pictures) - predict_proba(network, pictures)).max() <= (
        PROBABILITY_TOLERANCE)

    exported.write_bytes(exported.read_bytes()[:1000])  # truncated, as by a full disk outside atomic_write
    onnx_path_for(checkpoint)
    assert read_identity(exported)["checkpoint_sha256"] == file_sha256(checkpoint)


def test_the_command_exports_the_models_and_runs_it_finds_and_keeps_what_is_current(tmp_path, runs_dir, capsys):
    checkpoints = tmp_path / "checkpoints"
    shipped_copy("mlp", checkpoints)
    runs_dir.mkdir()
    shutil.copy(checkpoints / "mlp.pt", runs_dir / "run001-mlp.pt")
    shutil.copy(CHECKPOINT_DIR / "mlp.metrics.json", runs_dir / "run001-mlp.metrics.json")  # a complete run

    assert main(["export", "--onnx", "--checkpoint-dir", str(checkpoints)]) == 0
    printed = capsys.readouterr().err
    assert f"mlp: exported → {checkpoints / 'mlp.onnx'}" in printed
    assert f"run001-mlp: exported → {runs_dir / 'run001-mlp.onnx'}" in printed
    assert all(f"{name}: skipped, no checkpoint at" in printed for name in MODEL_NAMES if name != "mlp")
    assert (checkpoints / "mlp.onnx").is_file() and (runs_dir / "run001-mlp.onnx").is_file()

    assert main(["export", "--onnx", "--run", "run001-mlp"]) == 0
    assert "run001-mlp: up to date" in capsys.readouterr().err

    assert main(["export", "--onnx", "--model", "cnn", "--run", "run999-cnn", "--checkpoint-dir",
                 str(checkpoints)]) == 1
    printed = capsys.readouterr().err
    assert "cnn: no checkpoint at" in printed and "no saved run called 'run999-cnn'" in printed


def test_without_the_export_extra_the_command_and_the_library_name_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx fails, and find_spec finds nothing
    assert main(["export", "--onnx", "--checkpoint-dir", str(tmp_path)]) == 2
    assert "pip install 'digit-lab[export]'" in capsys.readouterr().err
    with pytest.raises(MissingExtra, match=r"pip install 'digit-lab\[export\]'"):
        export_onnx(CHECKPOINT_DIR / "mlp.pt", tmp_path / "mlp.onnx")
    assert not (tmp_path / "mlp.onnx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_shipped_export_is_current_and_answers_as_torch_does_on_all_the_test_digits(name, mnist_root):
    """The shipped file is the export of the shipped weights, with the parity the export promises: the same digit on
    at least 99.99% of MNIST's 10,000 test digits, and every probability within 1e-4 of torch's."""
    checkpoint = CHECKPOINT_DIR / f"{name}.pt"
    shipped = onnx_file_of(checkpoint)
    assert is_current(shipped, checkpoint), f"{shipped.name} is stale: run `digit-lab export --onnx --model {name}`"
    parity = compare_with_torch(checkpoint, shipped, load_mnist("test", mnist_root)[0])
    assert parity.count == 10_000
    assert parity.agreement >= AGREEMENT and parity.max_difference <= PROBABILITY_TOLERANCE, parity
