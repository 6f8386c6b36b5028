"""mnist_models.explain: attributions on toy models whose answer is known, then on every shipped model."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch import nn

from mnist_models import explain
from mnist_models.data import MNIST_MEAN, MNIST_STD, load_mnist, normalize, to_unit_float
from mnist_models.inference import predict_proba
from mnist_models.models.registry import MODEL_NAMES, get_spec
from mnist_models.store.checkpoints import load_checkpoint

REGION = (slice(5, 11), slice(5, 11))  # the 6×6 patch the toy linear model's class 3 reads
BLACK = -MNIST_MEAN / MNIST_STD  # a black pixel, normalised


def inked_everywhere(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(60, 256, size=(28, 28), dtype=np.uint8)


def normalised(image: np.ndarray) -> torch.Tensor:
    return normalize(to_unit_float(torch.as_tensor(image)[None]))


def region_linear_model() -> nn.Module:
    """Logits = W·pixels; every weight is zero except class 3's on a 6×6 patch."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.zero_()
        weights = torch.zeros(28, 28)
        weights[REGION] = torch.linspace(0.5, 1.5, 36).reshape(6, 6)
        model[1].weight[3] = weights.reshape(-1)
    return model.eval()


class QuadrantConv(nn.Module):
    """Sees only the bottom-right quadrant (the rest is replaced by black), then conv → ReLU → global mean → linear.
    Black gives the convolution exactly zero, so its features live in that quadrant only."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 10)
        mask = torch.zeros(1, 1, 28, 28, dtype=torch.bool)
        mask[..., 14:, 14:] = True
        self.register_buffer("mask", mask)
        with torch.no_grad():
            self.conv.weight.copy_(torch.linspace(0.05, 0.2, 36).reshape(4, 1, 3, 3))
            self.conv.bias.copy_(-BLACK * self.conv.weight.sum(dim=(1, 2, 3)))  # black patch → 0
            self.head.weight.copy_(torch.linspace(-1.0, 1.0, 40).reshape(10, 4))
            self.head.weight[7] = torch.tensor([0.5, 1.0, 1.5, 2.0])
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = torch.where(self.mask, x, torch.full_like(x, BLACK))
        return self.head(torch.relu(self.conv(seen)).mean(dim=(2, 3)))


def mass_share(attribution: np.ndarray, where) -> float:
    mass = np.abs(attribution)
    return float(mass[where].sum() / mass.sum())


# ---------------------------------------------------------------- toy models: the answer is known


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency"])
def test_attribution_lies_where_the_class_reads(method):
    image = inked_everywhere()
    attribution = explain.attribute(region_linear_model(), image, method, target=3)
    assert attribution.shape == (28, 28) and attribution.dtype == np.float32
    assert mass_share(attribution, REGION) >= 0.9
    assert (attribution[REGION] > 0).all()  # positive weights, ink above black: evidence for 3, in both conventions


def test_integrated_gradients_of_a_linear_model_is_weight_times_ink():
    model = region_linear_model()
    image = inked_everywhere(1)
    expected = (model[1].weight[3].reshape(28, 28) * (normalised(image)[0, 0] - BLACK)).detach().numpy()
    np.testing.assert_allclose(explain.attribute(model, image, "integrated_gradients", target=3), expected,
                               rtol=1e-4, atol=1e-6)


def test_integrated_gradients_is_complete_for_a_smooth_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Tanh(), nn.Linear(32, 10)).eval()
    image = inked_everywhere(2)
    logits_image = model(normalised(image))[0].detach()
    logits_black = model(normalised(np.zeros((28, 28), np.uint8)))[0].detach()
    for target in (0, 5):
        expected = float(logits_image[target] - logits_black[target])
        total = float(explain.attribute(model, image, "integrated_gradients", target=target).sum())
        assert abs(expected) > 0.1  # a difference worth accounting for
        assert total == pytest.approx(expected, rel=0.02, abs=1e-3)


def test_gradcam_concentrates_where_the_conv_features_are():
    image = inked_everywhere(3)
    cam = explain.attribute(QuadrantConv().eval(), image, "gradcam", target=7)
    assert cam.shape == (28, 28)
    assert mass_share(cam, (slice(14, None), slice(14, None))) >= 0.9


def test_target_defaults_to_the_predicted_digit():
    model = region_linear_model()
    image = inked_everywhere()
    assert int(model(normalised(image)).argmax()) == 3
    np.testing.assert_array_equal(explain.attribute(model, image, "saliency"),
                                  explain.attribute(model, image, "saliency", target=3))


def test_bad_requests_are_refused_with_a_reason():
    model = region_linear_model()
    with pytest.raises(ValueError, match="integrated_gradients, saliency, gradcam"):
        explain.attribute(model, inked_everywhere(), "lime")
    with pytest.raises(explain.NoConvolutionError, match="no convolution layer"):
        explain.attribute(model, inked_everywhere(), "gradcam")
    with pytest.raises(ValueError, match="not step by step"):
        explain.step_probabilities(model, inked_everywhere())
    with pytest.raises(ValueError, match="784 pixels"):
        explain.strongest_first_units(QuadrantConv(), inked_everywhere())
    assert explain.feature_maps(model, inked_everywhere()) == {}


# ---------------------------------------------------------------- the shipped models on real digits


@pytest.fixture(scope="module")
def test_digits(mnist_root):
    images, labels = load_mnist("test", mnist_root, download=False)
    return images.numpy(), labels.numpy()


@pytest.fixture(scope="module")
def shipped():
    return {name: load_checkpoint(name)[0] for name in MODEL_NAMES}


def applicable(model: nn.Module) -> list[str]:
    return [method for method in explain.ATTRIBUTION_METHODS
            if method != "gradcam" or explain.has_convolution(model)]


def inplace_flags(model: nn.Module) -> dict[str, bool]:
    return {name: module.inplace for name, module in model.named_modules() if hasattr(module, "inplace")}


def test_capabilities_of_each_model(shipped):
    assert {name for name in MODEL_NAMES if not explain.has_convolution(shipped[name])} == {"mlp", "rnn"}
    assert {name: explain.reading(shipped[name]).unit for name in MODEL_NAMES if explain.reading(shipped[name])} == {
        "rnn": "row", "crnn": "column"}
    assert {name for name in MODEL_NAMES if explain.reads_flat_pixels(shipped[name])} == {"mlp"}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_explains_a_real_digit_and_is_left_untouched(name, shipped, test_digits):
    images, _ = test_digits
    model = shipped[name]
    state = {key: value.clone() for key, value in model.state_dict().items()}
    flags = inplace_flags(model)
    predictions = predict_proba(model, images[:10]).argmax(axis=1)

    predicted = int(predictions[0])
    for method in applicable(model):
        own = explain.attribute(model, images[0], method)
        assert own.shape == (28, 28) and own.dtype == np.float32 and np.isfinite(own).all()
        assert np.abs(own).sum() > 0, f"{name} {method}: an all-zero map"
        np.testing.assert_array_equal(own, explain.attribute(model, images[0], method, target=predicted))
        wrong = explain.attribute(model, images[0], method, target=(predicted + 1) % 10)
        assert np.isfinite(wrong).all() and not np.allclose(own, wrong)
        if method == "saliency":
            assert (own >= 0).all() and (wrong >= 0).all()

    if not explain.has_convolution(model):
        with pytest.raises(explain.NoConvolutionError, match="no convolution layer"):
            explain.attribute(model, images[0], "gradcam")

    assert not model.training and all(not module.training for module in model.modules())
    assert inplace_flags(model) == flags
    assert all(not module._forward_hooks and not module._backward_hooks and not module._forward_pre_hooks
               for module in model.modules())
    after = model.state_dict()
    assert all(torch.equal(state[key], after[key]) for key in state)
    np.testing.assert_array_equal(predict_proba(model, images[:10]).argmax(axis=1), predictions)


def test_the_hybrid_answers_after_each_feature_column(shipped, test_digits):
    images, _ = test_digits
    model = shipped["crnn"]
    columns = explain.step_probabilities(model, images[0])
    assert columns.shape == (7, 10) and columns.dtype == np.float32
    np.testing.assert_allclose(columns.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(columns[-1], predict_proba(model, images[0])[0], atol=1e-5)
    blank_right = images[0].copy()
    blank_right[:, 16:] = 0  # the first columns' features see only pixels 0..15 (two 3×3 convolutions, two pools)
    np.testing.assert_allclose(explain.step_probabilities(model, blank_right)[:2], columns[:2], atol=1e-5)


def test_rnn_answers_after_each_row(shipped, test_digits):
    images, labels = test_digits
    model = shipped["rnn"]
    rows = explain.step_probabilities(model, images[0])
    assert rows.shape == (28, 10) and rows.dtype == np.float32
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(rows[-1], predict_proba(model, images[0])[0], atol=1e-5)

    with torch.inference_mode():  # the method's last step is forward's answer, for a batch too
        batch = normalised(images[:5]).reshape(5, 1, 28, 28)
        torch.testing.assert_close(model.logits_after_each_step(batch)[:, -1], model(batch), atol=1e-5, rtol=1e-5)

    k = 5
    first_ink = (images > 0).any(axis=2).argmax(axis=1)
    late = np.flatnonzero(first_ink >= k)
    first = late[0]
    second = next(index for index in late if labels[index] != labels[first])
    a, b = (explain.step_probabilities(model, images[index]) for index in (first, second))
    np.testing.assert_allclose(a[:k], b[:k], atol=1e-6)  # the same blank rows read so far: the same answer
    assert not np.allclose(a[-1], b[-1], atol=1e-3)  # and different digits by the end
    assert a[-1].argmax() == labels[first] and b[-1].argmax() == labels[second]


def test_feature_maps_are_each_convolutions_output(shipped, test_digits):
    images, _ = test_digits
    model = shipped["cnn"]
    maps = explain.feature_maps(model, images[0])
    assert list(maps) == ["features.0", "features.4"]
    assert maps["features.0"].shape == (32, 26, 26) and maps["features.4"].shape == (64, 11, 11)
    assert all(value.dtype == np.float32 for value in maps.values())
    expected = torch.nn.functional.conv2d(normalised(images[0]), model.features[0].weight)[0]
    np.testing.assert_allclose(maps["features.0"], expected.detach().numpy(), atol=1e-5)
    assert explain.feature_maps(shipped["mlp"], images[0]) == {}
    mobilenet = explain.feature_maps(shipped["mobilenet"], images[0])
    assert len(mobilenet) == sum(isinstance(module, nn.Conv2d) for module in shipped["mobilenet"].modules())


def test_strongest_first_units_of_the_mlp(shipped, test_digits):
    images, _ = test_digits
    model = shipped["mlp"]
    units = explain.strongest_first_units(model, images[0], count=8)
    assert len(units) == 8
    activations = [unit.activation for unit in units]
    assert activations == sorted(activations, reverse=True) and activations[-1] > 0
    layer = model.net[1]
    expected = torch.relu(layer(normalised(images[0]).reshape(1, 784)))[0].detach()
    assert activations[0] == pytest.approx(float(expected.max()), rel=1e-5)
    for unit in units:
        assert unit.weights.shape == (28, 28) and unit.weights.dtype == np.float32
        assert unit.activation == pytest.approx(float(expected[unit.index]), rel=1e-5)
        np.testing.assert_array_equal(unit.weights, layer.weight[unit.index].detach().reshape(28, 28).numpy())
    with pytest.raises(ValueError, match="784 pixels"):
        explain.strongest_first_units(shipped["cnn"], images[0])


def test_concurrent_attributions_match_a_single_thread(test_digits):
    images, _ = test_digits
    model = load_checkpoint("cnn")[0]  # a fresh object: its private copy is created under the race too
    rounds, start = 10, threading.Barrier(4)  # enough overlapping calls that shared hooks would show

    def explain_repeatedly(index: int) -> list[tuple[str, np.ndarray]]:
        start.wait()
        return [(method, explain.attribute(model, images[index], method))
                for _ in range(rounds) for method in explain.ATTRIBUTION_METHODS]

    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(explain_repeatedly, range(4)))
    for index, results in enumerate(concurrent):
        alone = {method: explain.attribute(model, images[index], method) for method in explain.ATTRIBUTION_METHODS}
        for method, result in results:
            np.testing.assert_allclose(result, alone[method], atol=1e-6, err_msg=f"digit {index}, {method}")


@pytest.mark.parametrize(("name", "activation"), [("cnn", nn.ReLU), ("cnn_basic", nn.ReLU), ("speedrun", nn.ReLU),
                                                  ("mobilenet", nn.Hardswish)])
def test_grad_cam_reads_the_rectified_features_after_the_last_convolution(name, activation):
    """The layer Grad-CAM was defined on: the last convolution's feature maps after their activation."""
    network = get_spec(name).build()
    layer = explain._last_features(network)
    modules = list(network.modules())
    last_conv = max(index for index, module in enumerate(modules) if isinstance(module, nn.Conv2d))
    assert isinstance(layer, activation) and modules.index(layer) > last_conv
