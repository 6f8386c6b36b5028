"""Checkpoints as ONNX files, for runtimes other than PyTorch (ONNX Runtime in Python, or in the browser).

The exported graph is the whole path from picture to answer, so a runtime needs nothing of digit-lab:

- it takes ``images``: float32, shape (N, 1, 28, 28), pixels 0..1 in MNIST's convention (white digit on black), the
  picture *before* normalisation; N is free (a dynamic batch dimension);
- it returns ``probabilities``: float32, shape (N, 10), the softmax over the ten classes, as ``predict_proba`` does.

The dataset's normalisation (MNIST's mean and std, or Fashion-MNIST's for a model trained on it) is inside the graph.
Each file carries its checkpoint's identity in the ONNX metadata (``metadata_props``, strings): ``model``,
``weights_id`` (absent for checkpoints saved before records had one), ``dataset``, ``record_format_version``,
``checkpoint_created``, ``created`` (when the file was exported), ``checkpoint_sha256`` and ``export_version``.

``onnx_path_for`` keeps one file beside each checkpoint (``checkpoints/cnn.pt`` → ``checkpoints/cnn.onnx``) and
rebuilds it when the checkpoint's bytes (its SHA-256) or this module's graph layout (``EXPORT_VERSION``) differ from
what the file records. The shipped models' files ship with them (the suite checks they are current, and exporting
all of them took 40 s of the 2-core machine); a saved run's is exported when first asked for.

The exporter is torch's default, torch.export-based one (it needs onnxscript): it exports every registry model,
recurrent layers and torchvision's MobileNet included, at opset 18, torchlib's own (no version conversion).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import normalize, to_unit_float
from .extras import needs_extra
from .inference import as_image_batch, predict_proba
from .store.checkpoints import CHECKPOINT_SUFFIX, load_checkpoint
from .store.files import atomic_write
from .store.records import RECORD_VERSION, CheckpointMeta

ONNX_SUFFIX = ".onnx"
ONNX_OPSET = 18
EXPORT_VERSION = 1
"""The graph's layout (its input, normalisation and output). Raising it makes ``onnx_path_for`` rebuild every file."""
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"
PURPOSE = "ONNX export"
GRAPH_DESCRIPTION = (f"digit-lab classifier. Input {INPUT_NAME!r}: float32 (N, 1, 28, 28), pixels 0..1, white digit "
                     f"on black, not normalised. Output {OUTPUT_NAME!r}: float32 (N, 10), class probabilities.")


class ProbabilityGraph(nn.Module):
    """What the ONNX file computes: the network between its dataset's normalisation and a softmax."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(normalize(images, self.network)), dim=-1)


def onnx_file_of(checkpoint: str | os.PathLike) -> Path:
    """Where a checkpoint's export is cached: beside it, ``.pt`` replaced by ``.onnx``."""
    path = Path(checkpoint)
    return path.with_name(path.name.removesuffix(CHECKPOINT_SUFFIX) + ONNX_SUFFIX)


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def identity_of(meta: CheckpointMeta, checkpoint_sha256: str) -> dict[str, str]:
    """The metadata an export of these weights carries (see the module's docstring)."""
    fields = {
        "model": meta.model, "weights_id": meta.weights_id, "dataset": meta.dataset_name,
        "record_format_version": str(RECORD_VERSION), "checkpoint_created": meta.created,
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "checkpoint_sha256": checkpoint_sha256,
        "export_version": str(EXPORT_VERSION),
    }
    return {key: value for key, value in fields.items() if value is not None}


def export_onnx(checkpoint: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Export the checkpoint at ``checkpoint`` to ``destination`` (written atomically), with its identity in the
    metadata; a MissingExtra naming ``digit-lab[export]`` without the exporter's packages."""
    with needs_extra("export", PURPOSE):
        import onnx
        import onnxscript  # noqa: F401  (torch's exporter imports it itself; here, so its absence names the extra)
    checkpoint = Path(checkpoint)
    checkpoint_sha256 = file_sha256(checkpoint)  # before loading: weights replaced meanwhile leave it stale, not wrong
    network, meta = load_checkpoint(checkpoint)
    # load_checkpoint's channels-last weights suit torch's CPU kernels; the graph keeps the plain layout, and leaves
    # the choice to the runtime. torch's stubs for Module.to lack the memory_format overload.
    graph = ProbabilityGraph(network.to(memory_format=torch.contiguous_format))  # pyright: ignore[reportCallIssue]
    example = torch.rand(2, 1, 28, 28)
    # The exporter's progress lines ('[torch.onnx] Obtain model graph…') and its notes on torch internals are kept
    # off the command's output.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(graph, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}},
                                    opset_version=ONNX_OPSET, dynamo=True, verbose=False)
    assert program is not None  # the torch.export-based exporter always returns its program
    model = program.model_proto
    model.doc_string = GRAPH_DESCRIPTION
    onnx.helper.set_model_props(model, identity_of(meta, checkpoint_sha256))
    return atomic_write(destination, lambda file: file.write(model.SerializeToString()))


def read_identity(onnx_file: str | os.PathLike) -> dict[str, str]:
    """The digit-lab metadata of an exported file (empty for a file without it)."""
    with needs_extra("export", PURPOSE):
        import onnx
    model = onnx.load(os.fspath(onnx_file), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


def is_current(onnx_file: str | os.PathLike, checkpoint: str | os.PathLike) -> bool:
    """Whether ``onnx_file`` exists and was exported from exactly these checkpoint bytes by this graph layout."""
    if not Path(onnx_file).is_file():
        return False
    try:
        identity = read_identity(onnx_file)
    except Exception:  # protobuf's and onnx's errors for a truncated or foreign file: it is simply rebuilt
        return False
    return (identity.get("checkpoint_sha256") == file_sha256(checkpoint)
            and identity.get("export_version") == str(EXPORT_VERSION))


def refresh_onnx(checkpoint: str | os.PathLike) -> tuple[Path, bool]:
    """(the checkpoint's cached ONNX file, whether it was exported now because it was missing or stale)."""
    destination = onnx_file_of(checkpoint)
    if is_current(destination, checkpoint):
        return destination, False
    return export_onnx(checkpoint, destination), True


def onnx_path_for(checkpoint: str | os.PathLike) -> Path:
    """The ONNX file of a checkpoint (a path), exported on demand and cached beside it; rebuilt when the weights
    changed since. What the dashboard serves to the browser."""
    return refresh_onnx(checkpoint)[0]


@dataclass(frozen=True)
class Parity:
    """How closely ONNX Runtime reproduces torch on a set of digits."""

    count: int
    agreement: float  # share of digits with the same most probable class
    max_difference: float  # the largest absolute difference between any two probabilities


def onnx_probabilities(onnx_file: str | os.PathLike, images) -> np.ndarray:
    """ONNX Runtime's probabilities (N, 10) for images as ``predict_proba`` takes them (uint8 0..255 or float 0..1)."""
    with needs_extra("export", "Running an exported model"):
        import onnxruntime

    unit = to_unit_float(as_image_batch(images)).numpy()
    session = onnxruntime.InferenceSession(os.fspath(onnx_file), providers=["CPUExecutionProvider"])
    return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: unit})[0])


def compare_with_torch(checkpoint: str | os.PathLike, onnx_file: str | os.PathLike, images) -> Parity:
    """ONNX Runtime against torch (``predict_proba`` of the checkpoint) on ``images``."""
    network, _ = load_checkpoint(checkpoint)
    expected, got = predict_proba(network, images), onnx_probabilities(onnx_file, images)
    return Parity(len(expected), float(np.mean(expected.argmax(1) == got.argmax(1))),
                  float(np.abs(expected - got).max()))
