"""digit-lab's ML library: MNIST data, the registry of six classifiers, training, checkpoints and evaluation.

It never imports Streamlit or Plotly: the dashboard (the ``dashboard`` package) is built on top of it.
"""

from .data import DatasetMissingError, load_mnist
from .errors import DigitLabError
from .inference import predict_proba
from .models.registry import MODEL_NAMES, MODEL_SPECS, get_spec
from .preprocess import EmptyDrawingError, preprocess_drawing
from .store.checkpoints import CheckpointError, load_checkpoint, load_evaluation, save_checkpoint
from .store.records import CheckpointMeta, Evaluation
from .training.config import TrainConfig
from .training.loop import train

__version__ = "0.2.0"
__all__ = [
    "MODEL_NAMES", "MODEL_SPECS", "CheckpointError", "CheckpointMeta", "DatasetMissingError", "DigitLabError",
    "EmptyDrawingError", "Evaluation", "TrainConfig", "get_spec", "load_checkpoint", "load_evaluation", "load_mnist",
    "predict_proba", "preprocess_drawing", "save_checkpoint", "train",
]
