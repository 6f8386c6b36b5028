import os
import pickle

import numpy as np
import pytest
import torch

from mnist_models import (
    MODEL_NAMES,
    CheckpointError,
    get_spec,
    load_checkpoint,
    load_evaluation,
    predict_proba,
    save_checkpoint,
)
from mnist_models.paths import CHECKPOINT_DIR
from mnist_models.store.checkpoints import CHECKPOINT_FORMAT, CONTAINER_VERSION, evaluation_path


def _meta(name: str) -> dict:
    return {"model": name, "architecture": dict(get_spec(name).architecture_defaults), "epochs_completed": 0}


@pytest.fixture
def saved_cnn(tmp_path):
    torch.manual_seed(0)
    model = get_spec("cnn").build().eval()
    path = save_checkpoint(tmp_path / "cnn.pt", model, _meta("cnn"))
    return model, path


def test_round_trip_restores_identical_predictions(saved_cnn):
    model, path = saved_cnn
    loaded, meta = load_checkpoint(path)
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    np.testing.assert_allclose(predict_proba(loaded, images), predict_proba(model, images), rtol=1e-6)
    assert meta.model == "cnn" and meta.path == path and not loaded.training


def test_a_name_is_looked_up_in_the_given_directory(saved_cnn):
    _, path = saved_cnn
    _, meta = load_checkpoint("cnn", checkpoint_dir=path.parent)
    assert meta.path == path


def test_writes_are_atomic_and_leave_no_temporary_files(saved_cnn, monkeypatch):
    model, path = saved_cnn
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, model, _meta("cnn"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["cnn.pt"]


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint("mlp", checkpoint_dir=tmp_path)


def test_corrupt_and_truncated_files_are_refused(saved_cnn, tmp_path):
    _, path = saved_cnn
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(4096))
    for bad in (truncated, garbage):
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            load_checkpoint(bad)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "format_version": CONTAINER_VERSION, "meta_json": "{}",
                "state_dict": exploit}, path)
    with pytest.raises(CheckpointError, match="never unpickled"):
        load_checkpoint(path)
    assert not marker.exists(), "loading the file ran the code inside it"


def test_a_foreign_file_is_named_as_such(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a digit-lab checkpoint"):
        load_checkpoint(path)
    plain_pickle = tmp_path / "plain.pkl"
    plain_pickle.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError):
        load_checkpoint(plain_pickle)


def test_weights_for_another_architecture_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "mixed.pt", get_spec("cnn").build(), _meta("cnn"))
    state = torch.load(path, weights_only=True)
    state["meta_json"] = state["meta_json"].replace('"cnn"', '"mlp"', 1)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="does not fit the mlp architecture"):
        load_checkpoint(path)


def test_a_checkpoint_under_another_models_name_is_refused(tmp_path):
    save_checkpoint(tmp_path / "rnn.pt", get_spec("mlp").build(), _meta("mlp"))
    with pytest.raises(CheckpointError, match="holds a 'mlp' model"):
        load_checkpoint("rnn", checkpoint_dir=tmp_path)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_shipped_checkpoint_loads_with_its_results(name):
    network, meta = load_checkpoint(name)
    evaluation = load_evaluation(name)
    assert meta.model == name and meta.epochs_completed >= 1 and meta.cancelled is False
    assert {"torch", "torchvision"} <= set(meta.versions) and meta.history["val_accuracy"]
    assert evaluation.metrics.accuracy >= get_spec(name).target_accuracy
    assert evaluation.parameters == sum(p.numel() for p in network.parameters())
    assert evaluation.trained.epochs_completed == meta.epochs_completed
    assert evaluation_path(CHECKPOINT_DIR / f"{name}.pt").is_file()


def test_minimal_metadata_loads_with_the_rest_unknown(tmp_path):
    """The public API accepts a dict naming only the model; everything else reads as None (shown as unknown)."""
    path = save_checkpoint(tmp_path / "cnn.pt", get_spec("cnn").build(), {"model": "cnn"})
    _, meta = load_checkpoint(path)
    assert meta.model == "cnn" and meta.epochs_completed is None and meta.created is None
    assert meta.versions == {} and meta.history == {} and meta.run is None


def test_a_metadata_field_of_the_wrong_type_is_named(tmp_path):
    path = save_checkpoint(tmp_path / "cnn.pt", get_spec("cnn").build(), {"model": "cnn"})
    payload = torch.load(path, weights_only=True)
    payload["meta_json"] = '{"model": "cnn", "epochs_completed": "five"}'
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="unusable metadata: the field 'epochs_completed' should be int"):
        load_checkpoint(path)


def test_an_evaluation_that_is_not_json_or_lacks_its_metrics_is_refused(saved_cnn):
    _, path = saved_cnn
    evaluation_path(path).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_evaluation(path)
    evaluation_path(path).write_text('{"model": "cnn"}')
    with pytest.raises(CheckpointError, match="the field 'metrics' is missing"):
        load_evaluation(path)
