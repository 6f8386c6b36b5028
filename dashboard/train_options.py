"""What the Train page offers for each model, derived from the registry so a new architecture brings its own knobs.

Pages draw one widget per ``Setting``; the values go straight into ``TrainConfig.for_model``, whose validation is the
single judge of what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mnist_models.data import DATASETS
from mnist_models.models.architectures import MOBILENET_VARIANTS, RECURRENT_CELLS
from mnist_models.models.pretrained import FROM_SCRATCH, IMAGENET, imagenet_weights_cached
from mnist_models.models.registry import get_spec
from mnist_models.training.config import TrainConfig


@dataclass(frozen=True)
class Setting:
    """One architecture hyperparameter as a widget: a choice among ``options``, or a number in [minimum, maximum]."""

    key: str
    label: str
    options: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    help: str = ""


ARCHITECTURE_SETTINGS = {setting.key: setting for setting in (
    Setting("dropout", "Dropout rate", minimum=0.0, maximum=0.9, step=0.05,
            help="Fraction of activations zeroed while training; 0 turns dropout off."),
    Setting("cell", "Recurrent cell", options=tuple(RECURRENT_CELLS),
            help="Plain tanh RNN (the report's), LSTM or GRU."),
    Setting("hidden_size", "Hidden size", minimum=16, maximum=1024, step=16, help="Units in the recurrent state."),
    Setting("variant", "MobileNet variant", options=tuple(MOBILENET_VARIANTS)),
)}
WEIGHT_LABELS = {IMAGENET: "ImageNet", FROM_SCRATCH: "random"}
# Training-subset sizes offered for quick runs; None is every training image left after the validation split.
SUBSET_CHOICES: tuple[int | None, ...] = (250, 1000, 5000, 20000, None)
# The Train page's one-click demo: the registry model built to pass 99% in one epoch, with its own recipe.
ONE_CLICK_MODEL = "speedrun"
ONE_CLICK_TARGET = 0.99


def dataset_setting(chosen: str) -> dict[str, Any]:
    """The Train page's dataset choice as selectbox arguments: every dataset of the data layer by its title, starting
    at ``chosen`` (the sidebar's); a run records it, and joins that dataset's models."""
    names = list(DATASETS)
    return {"label": "Dataset", "options": names, "format_func": lambda name: DATASETS[name].title,
            "index": names.index(chosen), "key": "train_dataset",
            "help": "What the models train on; a run is compared only with models of the same dataset."}


def architecture_settings(model: str) -> list[tuple[Setting, Any]]:
    """The tunable architecture hyperparameters of ``model``, each with the registry's default."""
    defaults = get_spec(model).architecture_defaults
    return [(setting, defaults[key]) for key, setting in ARCHITECTURE_SETTINGS.items() if key in defaults]


def weight_choices(model: str) -> tuple[str, ...]:
    """Initialisations a pretrained-capable model offers, usable ones first (ImageNet only once it is cached)."""
    spec = get_spec(model)
    if not spec.pretrained_variants:
        return ()
    variant = spec.architecture_defaults["variant"]
    return (IMAGENET, FROM_SCRATCH) if imagenet_weights_cached(variant) else (FROM_SCRATCH, IMAGENET)


def subset_label(size: int | None, available: int | None) -> str:
    """How the training-subset slider names a size; ``available`` is how many images training can use (None when
    the dataset is missing)."""
    if size is not None:
        return f"{size:,}"
    return f"all {available:,}" if available is not None else "all"


def recipe(model: str) -> TrainConfig:
    """The shipped checkpoint's recipe, with weights that can be had here: the Train page's starting values."""
    choices = weight_choices(model)
    return TrainConfig.for_model(model, weights=choices[0] if choices else None)


def one_click_config(device: str) -> TrainConfig:
    """The "Train to 99% now" run: the speed model's registry recipe unchanged, so the audience sees the recipe."""
    return TrainConfig.for_model(ONE_CLICK_MODEL, device=device)
