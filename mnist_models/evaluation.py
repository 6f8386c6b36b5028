"""Test-set evaluation with scikit-learn's metrics, plus calibration, size and latency, as JSON-ready dicts."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import (accuracy_score, confusion_matrix, log_loss, precision_recall_fscore_support,
                             roc_auc_score, roc_curve)
from sklearn.preprocessing import label_binarize
from torch import nn

from .checkpoints import library_versions, metrics_path, utc_now, write_json
from .data import tensor_checksum
from .inference import predict_proba

CLASSES = list(range(10))
ROC_POINTS = 200  # enough for a smooth plot; the AUCs are computed on every threshold


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins, weighted by bin size."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def _thin(fpr: np.ndarray, tpr: np.ndarray) -> dict[str, list[float]]:
    if len(fpr) > ROC_POINTS:
        keep = np.unique(np.linspace(0, len(fpr) - 1, ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": np.round(fpr, 5).tolist(), "tpr": np.round(tpr, 5).tolist()}


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, confusion matrix, one-vs-rest ROC and AUCs, log loss and ECE."""
    labels = np.asarray(labels)
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=CLASSES,
                                                                     zero_division=0)
    onehot = label_binarize(labels, classes=CLASSES)
    roc: dict[str, dict[str, list[float]]] = {}
    class_auc: dict[str, float] = {}
    for digit in CLASSES:
        if onehot[:, digit].any() and not onehot[:, digit].all():
            fpr, tpr, _ = roc_curve(onehot[:, digit], probabilities[:, digit])
            roc[str(digit)] = _thin(fpr, tpr)
            class_auc[str(digit)] = float(roc_auc_score(onehot[:, digit], probabilities[:, digit]))
    fpr, tpr, _ = roc_curve(onehot.ravel(), probabilities.ravel())
    roc["micro"] = _thin(fpr, tpr)
    present = [int(d) for d in class_auc]
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "errors": int((predicted != labels).sum()),
        "count": int(len(labels)),
        "per_class": {
            str(digit): {"precision": float(precision[digit]), "recall": float(recall[digit]),
                         "f1": float(f1[digit]), "support": int(support[digit])}
            for digit in CLASSES
        },
        "macro_f1": float(f1[present].mean()) if present else 0.0,
        "confusion_matrix": confusion_matrix(labels, predicted, labels=CLASSES).tolist(),
        "roc": roc,
        "auc": {
            "per_class": class_auc,
            "macro": float(np.mean(list(class_auc.values()))) if class_auc else float("nan"),
            "micro": float(roc_auc_score(onehot, probabilities, average="micro")),
        },
        "log_loss": float(log_loss(labels, probabilities, labels=CLASSES)),
        "ece": expected_calibration_error(probabilities, labels),
    }


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {"p50_ms": round(statistics.median(ordered), 4),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 4)}


@torch.inference_mode()
def measure_latency(model: nn.Module, images: torch.Tensor, single_runs: int = 50, batch_runs: int = 5,
                    batch_size: int = 1000) -> dict[str, Any]:
    """Wall-clock inference latency through predict_proba: one image, and a batch, as p50/p95 in milliseconds."""
    def timed(batch) -> float:
        start = time.perf_counter()
        predict_proba(model, batch)
        return (time.perf_counter() - start) * 1000

    single = [images[i % len(images)] for i in range(single_runs + 3)]
    for image in single[:3]:
        timed(image)  # warm-up: first calls allocate and pick kernels
    single_ms = [timed(image) for image in single[3:]]
    batch = images[:batch_size]
    timed(batch)
    batch_ms = [timed(batch) for _ in range(batch_runs)]
    return {"single": _percentiles(single_ms), "batch": {**_percentiles(batch_ms), "size": len(batch)},
            "threads": torch.get_num_threads(), "device": str(next(model.parameters()).device)}


def evaluate_model(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   checkpoint: str | os.PathLike | None = None, latency: bool = True) -> dict[str, Any]:
    """Everything the dashboard shows about one model on the test set, JSON-ready.

    Per-image predictions and confidences are kept so pages can build galleries without running the model.
    """
    probabilities = predict_proba(model, images)
    results: dict[str, Any] = {
        "evaluated": utc_now(),
        "test_sha256": tensor_checksum(images, labels),
        "metrics": classification_metrics(probabilities, labels.numpy()),
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "predictions": probabilities.argmax(axis=1).tolist(),
        "confidence": np.round(probabilities.max(axis=1), 4).tolist(),
        "versions": library_versions(),
    }
    if checkpoint is not None:
        results["size_bytes"] = Path(checkpoint).stat().st_size
    if latency:
        results["latency"] = measure_latency(model, images)
    return results


TRAINING_SUMMARY_KEYS = ("epochs_completed", "train_time_s", "created", "initialisation", "device", "cancelled")


def evaluate_checkpoint(model: nn.Module, meta: dict[str, Any], checkpoint: str | os.PathLike,
                        test_data: tuple[torch.Tensor, torch.Tensor], latency: bool = True) -> dict[str, Any]:
    """Evaluate a saved model and write the results beside its checkpoint, with a summary of how it was trained."""
    images, labels = test_data
    record = {
        "model": meta["model"],
        "checkpoint": Path(checkpoint).name,
        "trained": {key: meta.get(key) for key in TRAINING_SUMMARY_KEYS},
        **evaluate_model(model, images, labels, checkpoint=checkpoint, latency=latency),
    }
    write_json(metrics_path(checkpoint), record)
    return record
