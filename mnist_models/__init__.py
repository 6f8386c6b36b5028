"""digit-lab's ML engine: MNIST data, the registry of six classifiers, training, checkpoints and evaluation."""

from .checkpoints import CheckpointError, load_checkpoint, load_metrics, save_checkpoint
from .data import DatasetMissingError, load_mnist
from .inference import predict_proba
from .preprocess import EmptyDrawingError, preprocess_drawing
from .registry import MODEL_NAMES, MODEL_SPECS, get_spec
from .training import TrainConfig, train

__version__ = "0.1.0"
__all__ = [
    "MODEL_NAMES", "MODEL_SPECS", "CheckpointError", "DatasetMissingError", "EmptyDrawingError", "TrainConfig",
    "get_spec", "load_checkpoint", "load_metrics", "load_mnist", "predict_proba", "preprocess_drawing",
    "save_checkpoint", "train",
]
