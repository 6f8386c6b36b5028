import threading

import pytest
import torch

from mnist_models import TrainConfig, get_spec, load_mnist, predict_proba, train
from mnist_models.data import VALIDATION_SIZE
from mnist_models.training.config import RECIPES, TRAINING_DEFAULTS
from mnist_models.training.loop import Progress, evaluate_loss_accuracy


@pytest.fixture(scope="module")
def real_subset(mnist_root):
    images, labels = load_mnist("train", mnist_root)
    return images[:6000], labels[:6000]


def test_a_short_run_learns_far_above_chance(real_subset):
    events: list[Progress] = []
    config = TrainConfig.for_model("cnn_basic", epochs=2, train_subset=3000, device="cpu")
    result = train(config, progress=events.append, data=real_subset)
    assert not result.cancelled and result.epochs_completed == 2
    assert result.history["val_accuracy"][-1] > 0.85, "10% is chance; a working loop reaches ~95% here"
    assert result.history["train_loss"][1] < result.history["train_loss"][0]
    epoch_events = [event for event in events if event.kind == "epoch"]
    assert [event.epoch for event in epoch_events] == [1, 2]
    assert epoch_events[-1].val_accuracy == result.history["val_accuracy"][-1]
    batch_events = [event for event in events if event.kind == "batch"]
    assert batch_events and all(event.images_per_s > 0 and event.eta_s >= 0 for event in batch_events)
    assert batch_events[-1].fraction == pytest.approx(1.0)


def test_runs_are_reproducible_with_a_seed(real_subset):
    config = dict(epochs=1, train_subset=600, device="cpu", seed=7, augment=True)
    first = train(TrainConfig.for_model("mlp", **config), data=real_subset).network.state_dict()
    second = train(TrainConfig.for_model("mlp", **config), data=real_subset).network.state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_cancelling_stops_and_keeps_the_finished_epochs(real_subset):
    cancel = threading.Event()

    def stop_in_second_epoch(event: Progress) -> None:
        if event.epoch == 2:
            cancel.set()

    config = TrainConfig.for_model("mlp", epochs=5, train_subset=2000, device="cpu")
    result = train(config, progress=stop_in_second_epoch, cancel=cancel, data=real_subset, report_every=2)
    assert result.cancelled and result.epochs_completed == 1
    assert len(result.history["val_loss"]) == 1
    one_epoch = train(TrainConfig.for_model("mlp", epochs=1, train_subset=2000, device="cpu", schedule="constant"),
                      data=real_subset)
    cancel.clear()
    cancelled = train(TrainConfig.for_model("mlp", epochs=5, train_subset=2000, device="cpu", schedule="constant"),
                      progress=stop_in_second_epoch, cancel=cancel, data=real_subset, report_every=2)
    state, expected = cancelled.network.state_dict(), one_epoch.network.state_dict()
    assert all(torch.equal(state[key], expected[key]) for key in expected), "weights are those of the last epoch"


@pytest.mark.parametrize("name", ["rnn", "cnn", "cnn_dropout"])
def test_each_family_trains_on_a_synthetic_batch(name, tiny_dataset):
    data = load_mnist("train", tiny_dataset)
    result = train(TrainConfig.for_model(name, epochs=1, batch_size=16, device="cpu"), data=data)
    assert result.epochs_completed == 1 and torch.isfinite(torch.tensor(result.history["train_loss"])).all()


@pytest.mark.parametrize("bad, message", [
    ({"epochs": 0}, "epochs"), ({"lr": -1.0}, "learning rate"), ({"optimizer": "lbfgs"}, "optimizer"),
    ({"batch_size": 0}, "batch size"), ({"architecture": {"cell": "lstm"}}, "no hyperparameter"),
])
def test_bad_hyperparameters_are_refused_before_training(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.for_model("cnn", **bad)


def test_recipe_defaults_come_from_the_registry_and_overrides_win():
    config = TrainConfig.for_model("cnn_dropout", lr=0.01, epochs=None)
    assert config.augment is True and config.epochs == 10 and config.lr == 0.01
    assert config.validation_size == VALIDATION_SIZE and config.schedule == "onecycle"


def test_a_named_recipe_sits_between_the_registry_and_explicit_options():
    fast = TrainConfig.for_model("cnn", recipe="fast")
    assert (fast.epochs, fast.lr, fast.batch_size) == (RECIPES["fast"]["epochs"], RECIPES["fast"]["lr"], 128)
    assert fast.weight_decay == 1e-4, "what the recipe does not set stays the model's"
    assert TrainConfig.for_model("cnn", recipe="fast", epochs=1).epochs == 1
    with pytest.raises(ValueError, match="unknown recipe 'slow'"):
        TrainConfig.for_model("cnn", recipe="slow")


def test_the_room_recipe_adds_real_input_augmentation_to_the_model_s_own_recipe():
    room = TrainConfig.for_model("resnet", recipe="room")
    assert room.augment and room.room_augment and room.epochs == TrainConfig.for_model("resnet").epochs
    assert not TrainConfig.for_model("resnet").room_augment


def test_a_config_has_no_defaults_of_its_own_so_the_recipe_cannot_be_bypassed_by_accident():
    with pytest.raises(TypeError):
        TrainConfig("cnn")  # no defaults that could differ from the recipe
    with pytest.raises(TypeError, match="no setting"):
        TrainConfig.for_model("cnn", epoch=3)
    assert set(TRAINING_DEFAULTS) | {"model", "architecture"} == set(TrainConfig.__dataclass_fields__)


def test_predicting_runs_in_eval_mode_and_leaves_every_module_as_it_was():
    network = get_spec("mlp").build(dropout=0.5)
    images = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    network.train()
    network.net[0].eval()  # a caller's mix, as when some layers are frozen during fine-tuning
    first, second = predict_proba(network, images), predict_proba(network, images)
    assert (first == second).all(), "dropout was active: the prediction did not run in eval mode"
    assert network.training and not network.net[0].training
    assert all(module.training for module in network.modules() if module is not network.net[0])
    network.eval()
    predict_proba(network, images)
    assert not any(module.training for module in network.modules())


def test_evaluate_loss_accuracy_on_a_known_model():
    class Constant(torch.nn.Module):
        def forward(self, x):
            logits = torch.full((len(x), 10), -10.0)
            logits[:, 3] = 10.0
            return logits

    images = torch.zeros(4, 28, 28, dtype=torch.uint8)
    loss, accuracy = evaluate_loss_accuracy(Constant(), images, torch.tensor([3, 3, 1, 3]))
    assert accuracy == 0.75 and loss == pytest.approx(20.0 / 4, rel=1e-3)


def test_step_schedule_decays_the_rate_by_0_7_each_epoch(tiny_dataset):
    data = load_mnist("train", tiny_dataset)
    result = train(TrainConfig.for_model("mlp", epochs=3, batch_size=8, lr=1.0, optimizer="adadelta",
                                         schedule="step", device="cpu"), data=data)
    assert result.history["lr"] == pytest.approx([0.7, 0.49, 0.343])


def test_a_run_too_short_for_one_cycle_keeps_a_constant_rate(tiny_dataset):
    data = load_mnist("train", tiny_dataset)
    result = train(TrainConfig.for_model("mlp", epochs=1, batch_size=16, lr=0.01, device="cpu"), data=data)
    assert result.history["lr"] == [0.01]


def test_a_record_written_before_betas_and_label_smoothing_reads_with_their_neutral_values():
    from mnist_models import load_checkpoint
    from mnist_models.training.pipeline import config_of

    _, meta = load_checkpoint("cnn")  # shipped before these settings existed
    assert "betas" not in meta.training and "label_smoothing" not in meta.training
    config = config_of(meta)
    assert config.betas is None and config.label_smoothing == 0.0 and config.optimizer == "adamw"


def test_fixed_betas_stay_fixed_through_a_one_cycle_schedule_and_default_ones_cycle():
    from mnist_models.training.loop import _make_optimizer, _make_scheduler

    def betas_over_steps(config: TrainConfig) -> set[tuple[float, float]]:
        optimizer = _make_optimizer(config, [torch.nn.Parameter(torch.zeros(1))])
        scheduler = _make_scheduler(config, optimizer, steps_per_epoch=20)
        seen = set()
        for _ in range(20):
            optimizer.step()
            scheduler.step()
            seen.add(tuple(optimizer.param_groups[0]["betas"]))
        return seen

    assert betas_over_steps(TrainConfig.for_model("speedrun")) == {(0.7, 0.9)}
    assert len(betas_over_steps(TrainConfig.for_model("cnn"))) > 1, "without fixed betas one-cycle cycles the first"


def test_label_smoothing_is_what_the_loss_is_computed_with(monkeypatch):
    from mnist_models.training import loop

    seen = []
    cross_entropy = loop.F.cross_entropy
    monkeypatch.setattr(loop.F, "cross_entropy", lambda *args, **kwargs: seen.append(kwargs.get(
        "label_smoothing")) or cross_entropy(*args, **kwargs))
    images, labels = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (64,))
    train(TrainConfig.for_model("speedrun", device="cpu", validation_size=16), data=(images, labels))
    assert seen and set(seen) - {None} == {0.1}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet", "crnn"])
def test_the_next_steps_deeper_and_hybrid_models_learn(name, real_subset):
    """The reports' suggested ResNet and CNN + GRU hybrid, two short epochs without augmentation."""
    config = TrainConfig.for_model(name, epochs=2, train_subset=3000, augment=False, device="cpu")
    result = train(config, data=real_subset)
    assert result.history["train_loss"][1] < result.history["train_loss"][0]
    assert result.history["val_accuracy"][-1] > 0.85, "10% is chance"
