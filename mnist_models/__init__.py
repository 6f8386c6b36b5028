"""digit-lab's ML library: the data (MNIST, Fashion-MNIST), the one registry of classifiers (``MODEL_NAMES``),
training, checkpoints and their records, evaluation, evidence and explanation.

It installs and runs alone (``pip install digit-lab``; the extras add the rest) and never imports the dashboard,
Streamlit or Plotly: the ``dashboard`` package is built on top of it. Its layer order is a contract in pyproject.toml.
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
