"""The fast inference path (channels-last weights and input, chunks) and the folded copy evaluate() uses give what
the plain module gives."""

import copy

import numpy as np
import pytest
import torch

from mnist_models.data import load_mnist, normalize, to_unit_float
from mnist_models.inference import BATCH_SIZE, folded_for_inference, predict_proba
from mnist_models.models.registry import MODEL_NAMES, get_spec
from mnist_models.paths import CHECKPOINT_DIR
from mnist_models.store.checkpoints import load_checkpoint


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_fast_path_predicts_what_the_plain_module_does(name, mnist_root):
    """load_checkpoint's channels-last network through predict_proba's chunks against a plain copy of the module
    (PyTorch's default memory format, every image in one forward pass) on real test digits."""
    if not (CHECKPOINT_DIR / f"{name}.pt").is_file():
        pytest.skip(f"no shipped checkpoint for {name}")
    network, _ = load_checkpoint(name)
    images = load_mnist("test", mnist_root)[0][:2 * BATCH_SIZE + 45]  # two full chunks and a ragged one
    plain = copy.deepcopy(network).to(memory_format=torch.contiguous_format)
    with torch.inference_mode():
        expected = torch.softmax(plain(normalize(to_unit_float(images))), dim=1).numpy()

    probabilities = predict_proba(network, images)
    assert probabilities.shape == (len(images), 10)
    assert np.array_equal(probabilities.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)
    one = predict_proba(network, images[7].numpy())  # the Draw page's path: one image
    np.testing.assert_allclose(one[0], expected[7], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_folded_copy_predicts_what_the_network_does_and_leaves_it_alone(name):
    torch.manual_seed(0)
    network = get_spec(name).build().train()
    for module in network.modules():  # batch norm statistics unlike the identity, so folding has work to do
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    weights = {key: value.clone() for key, value in network.state_dict().items()}
    images = torch.randint(0, 256, (BATCH_SIZE + 9, 28, 28), dtype=torch.uint8)

    folded = folded_for_inference(network)
    np.testing.assert_allclose(predict_proba(folded, images), predict_proba(network, images), rtol=0, atol=1e-5)
    assert network.training
    assert all(torch.equal(value, weights[key]) for key, value in network.state_dict().items())
