import pytest
import torch
from torchvision import models as tv_models

from mnist_models import MODEL_NAMES, MODEL_SPECS, get_spec
from mnist_models.models.architectures import MobileNetDigits
from mnist_models.models.pretrained import PretrainedWeightsUnavailable, load_pretrained_state
from mnist_models.training.config import TrainConfig
from mnist_models.training.loop import build_network


def test_every_registered_model_is_described_and_must_beat_its_report_within_its_budget():
    assert list(MODEL_SPECS) == list(MODEL_NAMES) and all(MODEL_SPECS[name].name == name for name in MODEL_NAMES)
    for spec in MODEL_SPECS.values():
        assert spec.description and spec.input_format and spec.title
        if spec.report_accuracy is None:  # a next step the reports suggested: it must beat every figure they gave
            assert spec.report_epochs is None and "suggested" in spec.report
            assert spec.target_accuracy > max(other.report_accuracy for other in MODEL_SPECS.values()
                                              if other.report_accuracy is not None)
            continue
        assert 0.9 < spec.report_accuracy < spec.target_accuracy < 1.0
        assert spec.training_defaults["epochs"] <= spec.report_epochs, "recipes stay within the reports' budgets"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_maps_a_batch_of_digits_to_ten_logits(name):
    network = get_spec(name).build().eval()
    with torch.no_grad():
        assert network(torch.randn(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rnn_cell_and_size_are_hyperparameters(cell):
    network = get_spec("rnn").build(cell=cell, hidden_size=32)
    assert type(network.recurrent).__name__ == cell.upper() and network.recurrent.hidden_size == 32
    assert network(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_registered_rnn_is_a_plain_tanh_rnn():
    recurrent = get_spec("rnn").build().recurrent
    assert isinstance(recurrent, torch.nn.RNN) and recurrent.nonlinearity == "tanh"


def test_dropout_model_differs_from_basic_only_by_dropout():
    basic, dropout = get_spec("cnn_basic"), get_spec("cnn_dropout")
    assert basic.builder is dropout.builder
    assert {k: v for k, v in basic.architecture_defaults.items() if k != "dropout"} == \
           {k: v for k, v in dropout.architecture_defaults.items() if k != "dropout"}
    assert dropout.architecture_defaults["dropout"] == 0.5


def test_unknown_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="no hyperparameter"):
        get_spec("mlp").build(cell="lstm")
    with pytest.raises(KeyError, match="choose one of"):
        get_spec("transformer")


def test_mobilenet_reads_digits_as_96px_rgb():
    network = get_spec("mobilenet").build()
    seen = {}
    network.backbone.features.register_forward_pre_hook(lambda module, inputs: seen.update(shape=inputs[0].shape))
    network.eval()(torch.zeros(2, 1, 28, 28))
    assert tuple(seen["shape"]) == (2, 3, 96, 96)


def _imagenet_like_state(variant_builder) -> dict:
    torch.manual_seed(1)
    return variant_builder(weights=None).state_dict()  # same layout as the ImageNet file, 1000-class head


def test_imagenet_weights_come_from_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = tv_models.MobileNet_V3_Small_Weights.IMAGENET1K_V1.url
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    state = _imagenet_like_state(tv_models.mobilenet_v3_small)
    torch.save(state, cache / url.rsplit("/", 1)[-1])
    network, provenance = build_network(TrainConfig.for_model("mobilenet"))
    assert "ImageNet" in provenance
    first_conv = "features.0.0.weight"
    assert torch.equal(network.backbone.state_dict()[first_conv], state[first_conv])
    assert network.backbone.classifier[-1].out_features == 10


def test_missing_imagenet_weights_give_a_clear_way_out(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(PretrainedWeightsUnavailable) as raised:
        build_network(TrainConfig.for_model("mobilenet"))
    message = str(raised.value)
    assert "--weights none" in message and "--weights FILE" in message and str(tmp_path) in message


def test_weights_from_a_file_and_from_scratch(tmp_path):
    path = tmp_path / "v2.pth"
    torch.save(_imagenet_like_state(tv_models.mobilenet_v2), path)
    config = TrainConfig.for_model("mobilenet", weights=str(path), architecture={"variant": "v2"})
    _, provenance = build_network(config)
    assert provenance.startswith("file v2.pth")
    _, scratch = build_network(TrainConfig.for_model("mobilenet", weights="none"))
    assert "scratch" in scratch
    with pytest.raises(PretrainedWeightsUnavailable, match="does not exist"):
        load_pretrained_state("v3_small", str(tmp_path / "nope.pth"))


def test_weights_for_another_network_are_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(tv_models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="do not fit"):
        build_network(TrainConfig.for_model("mobilenet", weights=str(path)))


def test_pretrained_option_only_for_models_that_have_it():
    with pytest.raises(ValueError, match="no pretrained weights"):
        TrainConfig.for_model("cnn", weights="imagenet")
    assert isinstance(get_spec("mobilenet").build(), MobileNetDigits)
