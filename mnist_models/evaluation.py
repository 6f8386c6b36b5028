"""Test-set evaluation with scikit-learn's metrics, plus calibration, size and latency, as an Evaluation record;
with the novelty threshold (``mnist_models.novelty``) calibrated on the validation digits the weights never saw."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import cast

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from sklearn.preprocessing import label_binarize
from torch import nn

from .data import VALIDATION_SIZE, DatasetMissingError, load_dataset, split_train_validation, tensor_checksum
from .extras import require_extra
from .inference import folded_for_inference, predict_proba
from .novelty import calibrate
from .store.checkpoints import evaluation_path, load_evaluation
from .store.files import write_json
from .store.records import (
    AreaUnderCurve,
    CheckpointMeta,
    ClassificationMetrics,
    Evaluation,
    Latency,
    NoveltyThreshold,
    RecordError,
    TrainingSummary,
    library_versions,
    utc_now,
)
from .timing import percentiles

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


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> ClassificationMetrics:
    """Accuracy, per-class precision/recall/F1, confusion matrix, one-vs-rest ROC and AUCs, log loss and ECE."""
    labels = np.asarray(labels)
    predicted = probabilities.argmax(axis=1)
    # sklearn's code has no annotations, so pyright infers a str zero_division from its default ("warn"; 0 is
    # documented) and float scores, which are per-class arrays with the default average=None
    scores = precision_recall_fscore_support(labels, predicted, labels=CLASSES,
                                             zero_division=0)  # pyright: ignore[reportArgumentType]
    precision, recall, f1, support = cast(tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], scores)
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
    return ClassificationMetrics(
        accuracy=float(accuracy_score(labels, predicted)),
        errors=int((predicted != labels).sum()),
        count=int(len(labels)),
        per_class={
            str(digit): {"precision": float(precision[digit]), "recall": float(recall[digit]),
                         "f1": float(f1[digit]), "support": int(support[digit])}
            for digit in CLASSES
        },
        macro_f1=float(f1[present].mean()) if present else 0.0,
        confusion_matrix=confusion_matrix(labels, predicted, labels=CLASSES).tolist(),
        roc=roc,
        auc=AreaUnderCurve(
            per_class=class_auc,
            macro=float(np.mean(list(class_auc.values()))) if class_auc else float("nan"),
            micro=float(roc_auc_score(onehot, probabilities, average="micro")),
        ),
        log_loss=float(log_loss(labels, probabilities, labels=CLASSES)),
        ece=expected_calibration_error(probabilities, labels),
    )


@torch.inference_mode()
def measure_latency(network: nn.Module, images: torch.Tensor, single_runs: int = 50, batch_runs: int = 5,
                    batch_size: int = 1000) -> Latency:
    """Wall-clock inference latency through predict_proba: one image, and a batch, after warm-up calls."""
    def timed(batch) -> float:
        start = time.perf_counter()
        predict_proba(network, batch)
        return (time.perf_counter() - start) * 1000

    single = [images[i % len(images)] for i in range(single_runs + 3)]
    for image in single[:3]:
        timed(image)  # warm-up: first calls allocate and pick kernels
    single_ms = [timed(image) for image in single[3:]]
    batch = images[:batch_size]
    timed(batch)
    batch_ms = [timed(batch) for _ in range(batch_runs)]
    return Latency(percentiles(single_ms), percentiles(batch_ms), len(batch), torch.get_num_threads(),
                   str(next(network.parameters()).device))


def validation_split(meta: CheckpointMeta, data_dir: str | os.PathLike | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The validation images ``meta``'s weights never trained on, with their labels (``held_out_validation`` of
    their dataset's training images). None when the dataset is not on disk: nothing is downloaded."""
    try:
        return held_out_validation(meta, load_dataset(meta.dataset_name, "train", data_dir, download=False))
    except DatasetMissingError:
        return None


def held_out_validation(meta: CheckpointMeta, train_data: tuple[torch.Tensor, torch.Tensor]
                        ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The training images held out as ``meta``'s training held them out (the fixed split seed, the run's
    ``validation_size``), with their labels; None when the weights were trained on other images (their
    ``train_sha256`` is not these images')."""
    images, labels = train_data
    trained_on = (meta.dataset or {}).get("train_sha256")
    if trained_on is not None and trained_on != tensor_checksum(images, labels):
        return None
    size = meta.training.get("validation_size") or VALIDATION_SIZE
    if not isinstance(size, int):
        return None
    _, held_out = split_train_validation(images, labels, min(size, len(images) // 5 or 1))
    return held_out


def validation_images(meta: CheckpointMeta, data_dir: str | os.PathLike | None = None) -> torch.Tensor | None:
    """The images of ``validation_split``: what the novelty threshold is calibrated on."""
    split = validation_split(meta, data_dir)
    return None if split is None else split[0]


def novelty_threshold(network: nn.Module, meta: CheckpointMeta, validation_data=None) -> NoveltyThreshold | None:
    """``calibrate`` on ``validation_data`` (images, or an (images, labels) pair; ``()`` for none), or when it is
    None on ``validation_images(meta)``; None when there are no images to calibrate on."""
    if validation_data is None:
        validation_data = validation_images(meta)
    elif isinstance(validation_data, (tuple, list)):
        validation_data = validation_data[0] if validation_data else None
    return calibrate(network, validation_data) if validation_data is not None and len(validation_data) else None


def evaluate(network: nn.Module, meta: CheckpointMeta, test_data: tuple[torch.Tensor, torch.Tensor],
             checkpoint: str | os.PathLike | None = None, latency: bool = True, validation_data=None) -> Evaluation:
    """Everything the dashboard shows about one model on the test set, with a summary of how it was trained and
    the novelty threshold calibrated on ``validation_data`` (see ``novelty_threshold``).

    ``checkpoint`` is the file the weights were saved in, for its size. The test digits and the validation digits go
    through ``folded_for_inference``'s copy; the latency is measured on ``network`` itself, as the dashboard runs it.
    """
    images, labels = test_data
    folded = folded_for_inference(network)
    probabilities = predict_proba(folded, images)
    return Evaluation(
        model=meta.model,
        metrics=classification_metrics(probabilities, labels.numpy()),
        weights_id=meta.weights_id,
        checkpoint=Path(checkpoint).name if checkpoint is not None else None,
        trained=TrainingSummary.of(meta),
        evaluated=utc_now(),
        test_sha256=tensor_checksum(images, labels),
        parameters=sum(parameter.numel() for parameter in network.parameters()),
        predictions=probabilities.argmax(axis=1).tolist(),
        confidence=np.round(probabilities.max(axis=1), 4).tolist(),
        versions=library_versions(),
        size_bytes=Path(checkpoint).stat().st_size if checkpoint is not None else None,
        latency=measure_latency(network, images) if latency else None,
        novelty=novelty_threshold(folded, meta, validation_data),
    )


def _saved_at(meta: CheckpointMeta) -> Path:
    """The checkpoint ``meta`` was read from or saved as: the records written beside it need one."""
    if meta.path is None:
        raise ValueError(f"these {meta.model} weights were never saved: there is no checkpoint to write beside")
    return meta.path


def reevaluate(network: nn.Module, meta: CheckpointMeta, test_data: tuple[torch.Tensor, torch.Tensor],
               latency: bool = True, validation_data=None) -> Evaluation:
    """Evaluate a checkpoint that is already saved (``meta.path``) and replace the evaluation beside it; the
    weights do not change, so only that one file is rewritten, atomically."""
    checkpoint = _saved_at(meta)
    evaluation = evaluate(network, meta, test_data, checkpoint, latency, validation_data)
    write_json(evaluation_path(checkpoint), evaluation.to_dict())
    return evaluation


def recalibrate(network: nn.Module, meta: CheckpointMeta, validation_data=None) -> Evaluation:
    """Calibrate the novelty threshold of a checkpoint that is already saved and evaluated, and rewrite only that
    part of its evaluation (atomically): the test figures and the latency measured before stay as they were.

    Raises CheckpointError when the checkpoint has no readable evaluation, ValueError when there are no
    validation digits to calibrate on."""
    checkpoint = _saved_at(meta)
    evaluation = load_evaluation(checkpoint, None, meta)
    novelty = novelty_threshold(network, meta, validation_data)
    if novelty is None:
        raise ValueError("no validation digits to calibrate on: MNIST's training images are not on disk, or these "
                         "weights were trained on other images")
    evaluation.novelty = novelty
    write_json(evaluation_path(checkpoint), evaluation.to_dict())
    return evaluation


EVIDENCE_PARTS = ("robustness", "calibration", "map")
"""The parts of a model's evidence ``digit-lab evaluate --only`` can redo one at a time: the robustness curves, the
calibration with the selective-prediction curve (both from the same probabilities), and the map of its features."""


def refresh_evidence(network: nn.Module, meta: CheckpointMeta, test_data: tuple[torch.Tensor, torch.Tensor],
                     validation_data: tuple[torch.Tensor, torch.Tensor] | None, parts=EVIDENCE_PARTS,
                     progress=None) -> None:
    """Compute the ``parts`` of the evidence for a saved checkpoint (``meta.path``) and save them beside it, keeping
    the parts already saved that were not asked for. ``progress(part, done, total)`` follows the long parts."""
    from .evidence import compute_evidence
    from .feature_space import fit_feature_map, map_path, save_feature_map
    from .store.evidence_records import evidence_path, load_evidence, merge, save_evidence

    unknown = set(parts) - set(EVIDENCE_PARTS)
    if unknown:
        raise ValueError(f"unknown evidence part(s) {sorted(unknown)}; choose from {', '.join(EVIDENCE_PARTS)}")
    if {"robustness", "map"} & set(parts):  # the FGSM curve needs Captum, the map UMAP: refuse before the hour of work
        require_extra("evidence", "The evidence (robustness curves and the map of the digits)")
    checkpoint = _saved_at(meta)
    tables = [name for name in ("robustness", "calibration") if name in parts]
    if tables:
        names = [*tables, *(["selective"] if "calibration" in tables else [])]
        evidence = compute_evidence(network, meta, test_data, validation_data, parts=tuple(names),
                                    progress=None if progress is None else lambda done, total: progress(
                                        "robustness", done, total))
        saved_file = evidence_path(checkpoint)
        try:
            evidence = merge(load_evidence(saved_file), evidence) if saved_file.exists() else evidence
        except RecordError:
            pass  # an unreadable older file is replaced by what was just computed
        save_evidence(saved_file, evidence)
    if "map" in parts:
        images, labels = test_data
        stages = ("features", "pca", "umap")
        feature_map = fit_feature_map(network, meta.model, images, labels, progress=None if progress is None else
                                      lambda stage: progress("map", stages.index(stage), len(stages)))
        save_feature_map(map_path(checkpoint), feature_map)
        if progress is not None:
            progress("map", len(stages), len(stages))
