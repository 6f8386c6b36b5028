"""A second dataset through the one pipeline: the config's dataset, the network carrying its normalisation, the
checkpoint and the evaluation recording and using it, and old checkpoints reading as MNIST's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mnist_models.data import (
    DATASETS,
    dataset_of,
    for_dataset,
    get_dataset,
    load_dataset,
    normalize,
    tensor_checksum,
    to_unit_float,
)
from mnist_models.evaluation import validation_split
from mnist_models.inference import folded_for_inference, predict_proba
from mnist_models.models.registry import get_spec
from mnist_models.preprocess import EmptyDrawingError, clothing_picture
from mnist_models.serving.catalog import load_catalog, of_dataset
from mnist_models.store.checkpoints import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
    shipped_name,
)
from mnist_models.training.config import TrainConfig
from mnist_models.training.loop import train
from mnist_models.training.pipeline import config_of, train_and_save
from tests.conftest import write_idx_dataset


def test_the_config_trains_on_mnist_unless_told_and_refuses_an_unknown_dataset():
    assert TrainConfig.for_model("cnn").dataset == "mnist"
    assert TrainConfig.for_model("cnn", dataset="fashion").dataset == "fashion"
    with pytest.raises(ValueError, match="dataset must be one of mnist, fashion, not 'cifar'"):
        TrainConfig.for_model("cnn", dataset="cifar")


def test_normalize_uses_the_constants_of_the_dataset_a_network_carries():
    unit = torch.rand(2, 1, 28, 28)
    fashion = get_dataset("fashion")
    expected = (unit - fashion.mean) / fashion.std
    assert torch.allclose(normalize(unit, "fashion"), expected)
    network = for_dataset(get_spec("mlp").build(), "fashion")
    assert torch.allclose(normalize(unit, network), expected)
    unmarked = get_spec("mlp").build()  # built before datasets were recorded: MNIST's
    assert dataset_of(unmarked).name == "mnist" and torch.allclose(normalize(unit, unmarked), normalize(unit))
    assert not torch.allclose(normalize(unit, "fashion"), normalize(unit, "mnist"))
    assert dataset_of(folded_for_inference(for_dataset(get_spec("cnn").build(), "fashion"))).name == "fashion"


def test_mobilenet_undoes_the_normalisation_of_its_own_dataset():
    """MobileNet turns its normalised input back into pixels for ImageNet's statistics: with each dataset's own
    normalisation it sees the same picture."""
    torch.manual_seed(0)
    network = get_spec("mobilenet").build().eval()
    unit = torch.rand(2, 1, 28, 28)
    with torch.inference_mode():
        as_mnist = network(normalize(unit, for_dataset(network, "mnist")))
        as_fashion = network(normalize(unit, for_dataset(network, "fashion")))
    assert torch.allclose(as_mnist, as_fashion, atol=1e-5)


def test_a_checkpoint_from_before_the_second_dataset_reads_as_mnist(tmp_path):
    network = get_spec("mlp").build(hidden_sizes=(16,))
    config = TrainConfig.for_model("mlp", architecture={"hidden_sizes": (16,)}).to_dict()
    for setting in ("dataset", "betas", "label_smoothing"):  # what the first shipped checkpoints lacked
        del config[setting]
    architecture = config.pop("architecture")
    save_checkpoint(tmp_path / "old.pt", network, {"model": "mlp", "architecture": architecture, "training": config,
                                                   "dataset": {"name": "MNIST", "train_sha256": "0" * 64}})
    loaded, meta = load_checkpoint(tmp_path / "old.pt")
    assert meta.dataset_name == "mnist" and dataset_of(loaded).name == "mnist"
    assert config_of(meta).dataset == "mnist"


def test_the_shipped_mnist_checkpoints_answer_exactly_as_before(mnist_root):
    """The shipped files predate the dataset setting: their predictions are MNIST-normalised, as they always were."""
    network, meta = load_checkpoint("cnn")
    images, _ = load_dataset("mnist", "test", mnist_root)
    with torch.inference_mode():
        before = torch.softmax(network(normalize(to_unit_float(images[:50]), "mnist")), dim=1).numpy()
    assert meta.dataset_name == "mnist"
    assert predict_proba(network, images[:50]) == pytest.approx(before, abs=1e-5)


def test_shipped_names_map_a_model_and_dataset_to_a_checkpoint(tmp_path):
    assert shipped_name("cnn") == "cnn" and shipped_name("cnn", "fashion") == "fashion-cnn"
    assert checkpoint_path("fashion-cnn", tmp_path) == tmp_path / "fashion-cnn.pt"


@pytest.fixture
def both_tiny(tmp_path):
    """A data root with a tiny MNIST (20 test images) and a tiny Fashion-MNIST (30 test images, other pixels)."""
    root = write_idx_dataset(tmp_path / "data")
    return write_idx_dataset(root, train_count=80, test_count=30, seed=1, folder="FashionMNIST")


def test_a_fashion_run_records_its_dataset_and_is_evaluated_on_its_test_split(both_tiny, tmp_path):
    config = TrainConfig.for_model("mlp", dataset="fashion", epochs=1, batch_size=16,
                                   architecture={"hidden_sizes": (16,)})
    train_data, test_data = load_dataset("fashion", "train", both_tiny), load_dataset("fashion", "test", both_tiny)
    _, saved = train_and_save(config, train_data, test_data, checkpoint=tmp_path / "fashion-mlp.pt")
    assert saved.meta.dataset == {"name": "fashion", "train_sha256": tensor_checksum(*train_data)}
    assert saved.evaluation.metrics.count == 30 and saved.evaluation.test_sha256 == tensor_checksum(*test_data)
    network, meta = load_checkpoint("fashion-mlp", tmp_path)
    assert dataset_of(network).name == "fashion" and config_of(meta).dataset == "fashion"
    validation = validation_split(meta, both_tiny)  # the held-out images of Fashion's training split, not MNIST's
    assert validation is not None and len(validation[0]) == 16
    (tmp_path / "mlp.pt").write_bytes((tmp_path / "fashion-mlp.pt").read_bytes())
    with pytest.raises(CheckpointError, match="trained on fashion, not 'mlp' on mnist"):
        load_checkpoint("mlp", tmp_path)


def test_train_without_data_loads_the_configs_dataset(both_tiny):
    config = TrainConfig.for_model("mlp", dataset="fashion", epochs=1, batch_size=16, validation_size=16)
    result = train(config, data_dir=str(both_tiny))
    assert result.train_checksum == tensor_checksum(*load_dataset("fashion", "train", both_tiny))
    assert dataset_of(result.network).name == "fashion"


def test_the_catalog_lists_a_shipped_fashion_model_apart_from_mnists(both_tiny, tmp_path):
    config = TrainConfig.for_model("mlp", dataset="fashion", epochs=1, batch_size=16)
    train_and_save(config, load_dataset("fashion", "train", both_tiny), load_dataset("fashion", "test", both_tiny),
                   checkpoint=tmp_path / "fashion-mlp.pt")
    entries = load_catalog(tmp_path)
    (fashion,) = of_dataset(entries, "fashion")
    assert fashion.name == "fashion-mlp" and fashion.available and fashion.title == "MLP · Fashion-MNIST"
    assert [entry.name for entry in of_dataset(entries, "mnist")][:2] == ["mlp", "rnn"]  # MNIST's, missing or not
    assert "fashion-rnn" not in {entry.name for entry in entries}  # other datasets' only where shipped


def test_a_real_fashion_run_on_a_subset_learns_clothing(fashion_root, tmp_path):
    config = TrainConfig.for_model("mlp", dataset="fashion", epochs=1, train_subset=3000, device="cpu")
    _, saved = train_and_save(config, load_dataset("fashion", "train", fashion_root),
                              load_dataset("fashion", "test", fashion_root), checkpoint=tmp_path / "fashion-mlp.pt")
    assert saved.evaluation.metrics.count == 10_000 and saved.evaluation.metrics.accuracy > 0.6
    assert json.loads(json.dumps(saved.meta.to_dict()))["training"]["dataset"] == "fashion"
    assert set(DATASETS) == {"mnist", "fashion"}


def test_a_photo_of_clothing_on_white_becomes_a_light_garment_on_black_28_pixels_tall():
    photo = np.full((200, 100), 255, np.uint8)
    photo[20:180, 20:80] = 40  # a dark garment, 160 × 60 px, on a white backdrop
    picture = clothing_picture(photo)
    assert picture.shape == (28, 28) and picture.dtype == np.uint8
    assert picture[:, 14].min() > 200 and picture[14, :8].max() == 0  # fills the height, centred, background black
    with pytest.raises(EmptyDrawingError):
        clothing_picture(np.full((50, 50), 255, np.uint8))


def test_the_shipped_fashion_cnn_reads_fashion_pictures_remade_like_an_upload(fashion_root):
    """Fashion-MNIST's own test pictures, passed through the upload's preparation, are still read right."""
    network, meta = load_checkpoint("fashion-cnn")
    images, labels = load_dataset("fashion", "test", fashion_root)
    remade = np.stack([clothing_picture(image.numpy()) for image in images[:300]])
    accuracy = (predict_proba(network, remade).argmax(1) == labels[:300].numpy()).mean()
    assert meta.dataset_name == "fashion" and accuracy > 0.85
