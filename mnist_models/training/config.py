"""What determines a training run, with its defaults in one place.

``TrainConfig.for_model`` is the only way to make one: generic defaults, then the model's registry recipe, then a
named recipe, then the caller's explicit values (None means "not given" and keeps what came before). The dataclass
itself has no defaults, so a config can never silently fall back to values that are not the model's recipe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..data import DATASETS, VALIDATION_SIZE
from ..models.pretrained import IMAGENET
from ..models.registry import get_spec

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adadelta")
ADAM_OPTIMIZERS = ("adam", "adamw")  # the ones that take betas
SCHEDULES = ("constant", "onecycle", "cosine", "step")  # 'step' is the PyTorch example's StepLR(γ=0.7) per epoch
# Named recipes applied on top of a model's own (explicit options still win). 'fast' is the schedule the speed
# benchmark times: two epochs of one-cycle with large steps.
RECIPES: dict[str, dict[str, Any]] = {
    "fast": {"epochs": 2, "batch_size": 128, "lr": 3e-3, "optimizer": "adamw", "schedule": "onecycle"},
    "room": {"augment": True, "room_augment": True},  # trained for the room: real input's differences too
}
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 5, "batch_size": 128, "lr": 1e-3, "optimizer": "adam", "schedule": "constant", "weight_decay": 0.0,
    "grad_clip": None, "betas": None, "label_smoothing": 0.0, "augment": False, "augment_strength": 1.0,
    "room_augment": False,
    "train_subset": None, "validation_size": VALIDATION_SIZE, "seed": 0, "device": "auto", "weights": None,
    "dataset": "mnist",
}

# Settings added after checkpoints were first shipped, with the value an older record's run used without them.
SETTINGS_ADDED_LATER: dict[str, Any] = {"betas": None, "label_smoothing": 0.0, "dataset": "mnist",
                                        "room_augment": False}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run; stored in the checkpoint so the run can be repeated."""

    model: str  # the registry name
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    schedule: str
    weight_decay: float
    grad_clip: float | None
    betas: tuple[float, float] | None  # Adam/AdamW's, held fixed (a one-cycle schedule then cycles only the rate);
    # None: the optimizer's defaults, with one-cycle cycling the first
    label_smoothing: float  # share of each target spread over the other classes: steadier one-epoch runs
    augment: bool
    augment_strength: float
    room_augment: bool  # also the differences of real input: pen width, resolution loss and blur, slant, contrast
    train_subset: int | None  # use only this many training images (quick runs); None: all of them
    validation_size: int  # held out of the training images for the per-epoch curves
    seed: int
    device: str
    weights: str | None  # pretrained-capable models only: 'imagenet', 'none' or a file path
    dataset: str  # the data layer's name of the dataset it trains on (mnist, fashion)
    architecture: dict[str, Any]  # overrides of the registry's architecture defaults

    @classmethod
    def for_model(cls, model: str, recipe: str | None = None, architecture: dict[str, Any] | None = None,
                  **overrides: Any) -> TrainConfig:
        """The registry's recipe for ``model``, then the named ``recipe`` (see RECIPES), then ``overrides`` that are
        not None."""
        spec = get_spec(model)
        if recipe is not None and recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
        unknown = set(overrides) - set(TRAINING_DEFAULTS)
        if unknown:
            raise TypeError(f"TrainConfig has no setting(s) {sorted(unknown)}")
        settings = {**TRAINING_DEFAULTS, **spec.training_defaults, **(RECIPES[recipe] if recipe else {}),
                    **{key: value for key, value in overrides.items() if value is not None}}
        if settings["optimizer"] not in ADAM_OPTIMIZERS and overrides.get("betas") is None:
            settings["betas"] = None  # a recipe's betas are its Adam's: choosing another optimizer drops them
        if spec.pretrained_variants and settings["weights"] is None:
            settings["weights"] = IMAGENET
        return cls(model=model, architecture=dict(architecture or {}), **settings)

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):  # as read back from a record: a run's config equals the one it trained with
            object.__setattr__(self, "betas", tuple(self.betas))
        spec = get_spec(self.model)
        problems = []
        if self.epochs < 1:
            problems.append("epochs must be at least 1")
        if self.batch_size < 1:
            problems.append("batch size must be at least 1")
        if not self.lr > 0:
            problems.append("learning rate must be positive")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}")
        if self.train_subset is not None and self.train_subset < 1:
            problems.append("training subset must be at least 1 image")
        if self.validation_size < 1:
            problems.append("validation size must be at least 1 image")
        if self.betas is not None and (self.optimizer not in ADAM_OPTIMIZERS or len(self.betas) != 2
                                       or not all(0 <= beta < 1 for beta in self.betas)):
            problems.append("betas are two numbers from 0 to below 1, for adam or adamw only")
        if not 0 <= self.label_smoothing < 1:
            problems.append("label smoothing must be at least 0 and below 1")
        if self.augment_strength < 0:
            problems.append("augmentation strength cannot be negative")
        if self.dataset not in DATASETS:
            problems.append(f"dataset must be one of {', '.join(DATASETS)}, not {self.dataset!r}")
        if self.weights is not None and not spec.pretrained_variants:
            problems.append(f"{self.model} has no pretrained weights; leave weights unset")
        unknown = set(self.architecture) - set(spec.architecture_defaults)
        if unknown:
            problems.append(f"{self.model} has no hyperparameter(s) {sorted(unknown)}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
