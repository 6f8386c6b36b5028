"""Dataset statistics and views for the Dataset and Compare pages, as plain numpy results."""

from __future__ import annotations

import numpy as np
import torch

from .data import normalize, to_unit_float
from .models.architectures import mobilenet_view


def class_counts(labels: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.bincount(np.asarray(labels), minlength=10)


def mean_images(images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(10, 28, 28) mean image of each digit, in 0..255."""
    return np.stack([images[labels == digit].float().mean(0).numpy() for digit in range(10)])


def pixel_histogram(images: torch.Tensor) -> np.ndarray:
    """How many pixels take each of the 256 intensities."""
    return np.bincount(images.numpy().ravel(), minlength=256)


def sample_indices(labels: torch.Tensor, count: int, digit: int | None = None, seed: int = 0) -> np.ndarray:
    """``count`` random image indices (of one digit, if given); a new seed is a reshuffle."""
    pool = np.flatnonzero(np.asarray(labels) == digit) if digit is not None else np.arange(len(labels))
    return np.random.default_rng(seed).choice(pool, size=min(count, len(pool)), replace=False)


def pca_map(images: torch.Tensor, labels: torch.Tensor, count: int = 2000, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2-D PCA of a random subset: (coordinates (n, 2), the images' indices, explained variance ratios)."""
    from sklearn.decomposition import PCA  # here, not at the top: only this map needs scikit-learn's import time

    index = sample_indices(labels, count, seed=seed)
    flat = images[index].reshape(len(index), -1).float().numpy() / 255.0
    pca = PCA(n_components=2, random_state=seed)
    return pca.fit_transform(flat), index, pca.explained_variance_ratio_


def architecture_views(image: torch.Tensor, dataset: str = "mnist") -> dict[str, np.ndarray]:
    """One uint8 image (28, 28) as each family reads it, plus the normalisation every model of ``dataset`` applies
    first."""
    unit = to_unit_float(image.unsqueeze(0))
    return {
        "image": unit[0, 0].numpy(),  # CNNs: 28×28×1
        "rows": unit[0, 0].numpy(),  # RNN: 28 time steps of 28 values (same numbers, read row by row)
        "vector": unit.reshape(-1).numpy(),  # MLP: 784 values
        "mobilenet": mobilenet_view(unit)[0].permute(1, 2, 0).numpy(),  # 96×96×3
        "normalised": normalize(unit, dataset)[0, 0].numpy(),
    }


def confusion_cell(labels: np.ndarray, predictions: np.ndarray, true_digit: int, predicted_digit: int) -> np.ndarray:
    """Indices of test images with this true label that the model read as ``predicted_digit``."""
    return np.flatnonzero((np.asarray(labels) == true_digit) & (np.asarray(predictions) == predicted_digit))


def most_confident_mistakes(labels: np.ndarray, predictions: np.ndarray, confidence: np.ndarray, count: int = 24
                            ) -> np.ndarray:
    """Indices of misclassified images, the most confidently wrong first."""
    wrong = np.flatnonzero(np.asarray(labels) != np.asarray(predictions))
    return wrong[np.argsort(-np.asarray(confidence)[wrong], kind="stable")][:count]
