"""The one registry of models. Adding an architecture is one ModelSpec here; pages, CLI and tests iterate over it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from torch import nn

from . import architectures as arch


class Family(StrEnum):
    """How an architecture reads a digit. Pages, the report and the claims they test group models by it, never by
    their names, so a new architecture joins its group by its registry entry alone."""

    FLAT = "flat"  # the 784 pixels as one vector: no notion of neighbouring pixels
    RECURRENT = "recurrent"  # the rows one after another
    CONVOLUTIONAL = "convolutional"  # local filters over the image
    HYBRID = "convolutional + recurrent"  # a convolutional front end whose feature columns a recurrent layer reads

    @property
    def convolutional(self) -> bool:
        """Whether its first layers are convolutions (what Grad-CAM and the feature-map views need)."""
        return self in (Family.CONVOLUTIONAL, Family.HYBRID)


@dataclass(frozen=True)
class ModelSpec:
    """What every consumer needs to know about a model, without building it."""

    name: str
    title: str
    description: str
    family: Family
    input_format: str  # how the architecture reads a digit, shown on the Dataset page
    builder: Callable[..., nn.Module]
    architecture_defaults: dict[str, Any]
    training_defaults: dict[str, Any]  # TrainConfig fields that reproduce the shipped checkpoint
    report: str  # which seed report trained it, and how
    report_accuracy: float | None  # test accuracy the report quoted; None for a model the reports only suggested
    report_epochs: int | None
    target_accuracy: float  # what this project must beat (within report_epochs, where the report gave them)
    pretrained_variants: tuple[str, ...] = field(default=())  # non-empty: ImageNet weights can initialise it

    def build(self, **architecture: Any) -> nn.Module:
        """Build an untrained model; unknown hyperparameters are an error, not silently ignored."""
        unknown = set(architecture) - set(self.architecture_defaults)
        if unknown:
            raise ValueError(f"{self.name} has no hyperparameter(s) {sorted(unknown)}; "
                             f"it takes {sorted(self.architecture_defaults)}")
        return self.builder(**{**self.architecture_defaults, **architecture})


# The shipped checkpoints' optimiser: AdamW with a one-cycle learning-rate schedule.
ADAMW_ONE_CYCLE = {"optimizer": "adamw", "schedule": "onecycle", "weight_decay": 1e-4}

RESNET_ARCHITECTURE = {"widths": (32, 64, 128), "blocks": (2, 2, 2), "dropout": 0.1}
RESNET_TRAINING = {"epochs": 15, "batch_size": 128, "lr": 4e-3, "optimizer": "adamw", "schedule": "onecycle",
                   "weight_decay": 5e-4, "augment": True, "augment_strength": 1.0}

MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="mlp", title="MLP",
            description="Multi-layer perceptron: the 784 pixels as one flat vector through dense layers of 256 and "
                        "128 units. No notion of neighbouring pixels.",
            family=Family.FLAT,
            input_format="flat vector of 784 values", builder=arch.MLP,
            architecture_defaults={"hidden_sizes": (256, 128), "dropout": 0.2},
            training_defaults={"epochs": 5, "batch_size": 128, "lr": 2e-3, **ADAMW_ONE_CYCLE},
            report="000: CNN/RNN/MLP comparison, Adam, 5 epochs", report_accuracy=0.977, report_epochs=5,
            target_accuracy=0.980,
        ),
        ModelSpec(
            name="rnn", title="RNN",
            description="Recurrent network (plain tanh RNN) reading the image as 28 rows of 28 pixels, top to "
                        "bottom; its last state feeds a dense layer. The cell (rnn/lstm/gru) is a hyperparameter.",
            family=Family.RECURRENT,
            input_format="sequence of 28 rows × 28 pixels", builder=arch.RowRNN,
            architecture_defaults={"cell": "rnn", "hidden_size": 256, "num_layers": 1, "dense_size": 64},
            training_defaults={"epochs": 5, "batch_size": 64, "lr": 2e-3, "grad_clip": 1.0, **ADAMW_ONE_CYCLE},
            report="000: CNN/RNN/MLP comparison, Adam, 5 epochs", report_accuracy=0.964, report_epochs=5,
            target_accuracy=0.975,
        ),
        ModelSpec(
            name="cnn", title="CNN",
            description="Convolutional network: conv 32 → max-pool → conv 64 (3×3) → max-pool → dense 128 → 10, "
                        "with batch norm and dropout. Learns local strokes, then their combinations.",
            family=Family.CONVOLUTIONAL,
            input_format="image 28×28×1", builder=arch.CNN,
            architecture_defaults={"dense_size": 128, "dropout": 0.25},
            training_defaults={"epochs": 5, "batch_size": 128, "lr": 3e-3, **ADAMW_ONE_CYCLE},
            report="000: CNN/RNN/MLP comparison, Adam, 5 epochs", report_accuracy=0.992, report_epochs=5,
            target_accuracy=0.993,
        ),
        ModelSpec(
            name="cnn_basic", title="Basic CNN",
            description="Report 004's model A: one conv layer (32 filters, 3×3) → max-pool → flatten → dense 128 → 10.",
            family=Family.CONVOLUTIONAL,
            input_format="image 28×28×1", builder=arch.BasicCNN,
            architecture_defaults={"filters": 32, "dense_size": 128, "dropout": 0.0},
            training_defaults={"epochs": 10, "batch_size": 128, "lr": 2e-3, **ADAMW_ONE_CYCLE},
            report="004: basic CNN / dropout / MobileNet, 10 epochs", report_accuracy=0.982, report_epochs=10,
            target_accuracy=0.988,
        ),
        ModelSpec(
            name="cnn_dropout", title="CNN + dropout",
            description="Report 004's model B: the basic CNN with dropout 0.5 before and after its dense layer, "
                        "trained with light augmentation (small rotations, shifts, zoom).",
            family=Family.CONVOLUTIONAL,
            input_format="image 28×28×1", builder=arch.BasicCNN,
            architecture_defaults={"filters": 32, "dense_size": 128, "dropout": 0.5},
            training_defaults={"epochs": 10, "batch_size": 128, "lr": 2e-3, "augment": True, "augment_strength": 0.6,
                               **ADAMW_ONE_CYCLE},
            report="004: basic CNN / dropout / MobileNet, 10 epochs", report_accuracy=0.984, report_epochs=10,
            target_accuracy=0.990,
        ),
        ModelSpec(
            name="mobilenet", title="MobileNet",
            description="Torchvision MobileNet (v3-small by default, or v2) with a 10-class head; each digit is "
                        "resized to 96×96 and its gray copied to 3 channels. ImageNet weights when available.",
            family=Family.CONVOLUTIONAL,
            input_format="image 96×96×3 (resized, gray copied to RGB)", builder=arch.MobileNetDigits,
            architecture_defaults={"variant": "v3_small", "input_size": 96},
            training_defaults={"epochs": 4, "batch_size": 128, "lr": 3e-3, **ADAMW_ONE_CYCLE},
            report="004: transfer learning from ImageNet, 10 epochs", report_accuracy=0.979, report_epochs=10,
            target_accuracy=0.990, pretrained_variants=tuple(arch.MOBILENET_VARIANTS),
        ),
        ModelSpec(
            name="speedrun", title="Speedrun CNN",
            description="Built to reach 99% while you watch: conv 24 (5×5) → pool → conv 32 (3×3) → pool → dense 256 "
                        "→ 10, one epoch with label smoothing, channels-last on the CPU. Layout after "
                        "tuomaso/train_mnist_fast.",
            family=Family.CONVOLUTIONAL,
            input_format="image 28×28×1", builder=arch.SpeedrunCNN,
            architecture_defaults={"filters": (24, 32), "dense_size": 256},
            training_defaults={"epochs": 1, "batch_size": 256, "lr": 1e-2, "optimizer": "adam",
                               "schedule": "onecycle", "betas": (0.7, 0.9),
                               "label_smoothing": 0.1},
            report="tuomaso/train_mnist_fast: 99% in one epoch (the speed to beat, not a seed report)",
            report_accuracy=0.99, report_epochs=1, target_accuracy=0.991,
        ),
        ModelSpec(
            name="resnet", title="ResNet",
            description="A small residual network: 3×3 stem and max-pool to 14×14, then three stages of two residual "
                        "blocks (32, 64, 128 channels; 14×14, 7×7, 4×4) with batch norm, global average pooling → "
                        "10. Trained with augmentation (rotations, shifts, zoom).",
            family=Family.CONVOLUTIONAL,
            input_format="image 28×28×1", builder=arch.ResNet,
            architecture_defaults=RESNET_ARCHITECTURE, training_defaults=RESNET_TRAINING,
            report="suggested by reports 000 and 004 as a next step (\"deeper CNN architectures like ResNet\")",
            report_accuracy=None, report_epochs=None, target_accuracy=0.996,
        ),
        ModelSpec(
            name="resnet_room", title="ResNet (room)",
            description="The ResNet, trained for the room: besides rotations, shifts and zoom, its training digits "
                        "get what real input brings (another pen's width, a low-resolution scan enlarged, slant "
                        "and aspect, contrast), so that it reads more of other people's handwriting and of photos.",
            family=Family.CONVOLUTIONAL,
            input_format="image 28×28×1", builder=arch.ResNet,
            architecture_defaults=RESNET_ARCHITECTURE,
            training_defaults={**RESNET_TRAINING, "epochs": 8, "room_augment": True},
            report="suggested by report 004 as a next step (\"data augmentation to simulate different handwriting "
                   "styles\"): the ResNet's recipe with the room's augmentation, 8 epochs",
            report_accuracy=None, report_epochs=None, target_accuracy=0.995,
        ),
        ModelSpec(
            name="crnn", title="CNN + GRU",
            description="Hybrid: a convolutional front end (conv 32 → pool → conv 64 → pool, 7×7 maps) whose seven "
                        "feature columns a GRU reads left to right; its last state → 10. Trained with light "
                        "augmentation.",
            family=Family.HYBRID,
            input_format="image 28×28×1, read as 7 feature columns", builder=arch.CRNN,
            architecture_defaults={"cell": "gru", "hidden_size": 128, "filters": (32, 64), "dropout": 0.2},
            training_defaults={"epochs": 10, "batch_size": 128, "lr": 3e-3, "grad_clip": 1.0, "augment": True,
                               "augment_strength": 0.6, **ADAMW_ONE_CYCLE},
            report="suggested by report 000 as a next step (\"hybrid architectures combining CNNs and RNNs\")",
            report_accuracy=None, report_epochs=None, target_accuracy=0.993,
        ),
    )
}
MODEL_NAMES: tuple[str, ...] = tuple(MODEL_SPECS)


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``, with the list of valid names in the error."""
    try:
        return MODEL_SPECS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}") from None
