"""The network families from the two reports, and one built for speed, as PyTorch modules.

Every module takes the same input, a normalised batch (N, 1, 28, 28), and reshapes it into the form its architecture
reads (rows, a flat vector, a 96×96 RGB image), so inference code never needs to know which model it is feeding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import dataset_of


class MLP(nn.Module):
    """Flatten 784 → dense → dense → 10 (report 000's MLP: 256 and 128 units)."""

    def __init__(self, hidden_sizes: tuple[int, ...] = (256, 128), dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = 28 * 28
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


RECURRENT_CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class Reading:
    """How a recurrent model walks over a digit, for the Explain page's answer after each step: a model with a
    ``READING`` also has ``logits_after_each_step(x) -> (N, steps, 10)``."""

    unit: str  # "row" or "column"
    steps: int
    pixels_per_step: int
    direction: str  # "top to bottom", "left to right"


class RowRNN(nn.Module):
    """Reads the 28 rows top to bottom as a sequence of 28-pixel vectors; the last state feeds a dense head."""

    READING = Reading("row", 28, 1, "top to bottom")

    def __init__(self, cell: str = "rnn", hidden_size: int = 128, num_layers: int = 1, dense_size: int = 64) -> None:
        super().__init__()
        if cell not in RECURRENT_CELLS:
            raise ValueError(f"cell must be one of {sorted(RECURRENT_CELLS)}, not {cell!r}")
        extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.recurrent = RECURRENT_CELLS[cell](28, hidden_size, num_layers=num_layers, batch_first=True, **extra)
        for name, weight in self.recurrent.named_parameters():
            if name.startswith("weight_hh"):
                nn.init.orthogonal_(weight)  # keeps the state's scale over 28 steps: plain RNNs train far better
        self.head = nn.Sequential(nn.Linear(hidden_size, dense_size), nn.ReLU(inplace=True), nn.Linear(dense_size, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(x.shape[0], 28, 28)
        outputs, _ = self.recurrent(rows)
        return self.head(outputs[:, -1])

    def logits_after_each_step(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 28, 10): the head applied to the state after each row, i.e. the answer had the image ended there;
        the last step is what ``forward`` returns."""
        rows = x.reshape(x.shape[0], 28, 28)
        outputs, _ = self.recurrent(rows)
        return self.head(outputs)


class CNN(nn.Module):
    """Report 000's CNN: conv 32 → pool → conv 64 (3×3) → pool → dense → 10, with batch norm and dropout added."""

    def __init__(self, dense_size: int = 128, dropout: float = 0.25) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(32), nn.ReLU(inplace=True),  # 13×13
            nn.Conv2d(32, 64, 3, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(64), nn.ReLU(inplace=True),  # 5×5
        )  # pooling before batch norm normalises 4× fewer values: the same function family, 1.3× faster on CPU
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(64 * 5 * 5, dense_size), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(dense_size, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicCNN(nn.Module):
    """Report 004's models A and B: conv → max-pool → flatten → dense → 10; B adds dropout 0.5."""

    def __init__(self, filters: int = 32, dense_size: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, filters, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(),
            nn.Dropout(dropout), nn.Linear(filters * 13 * 13, dense_size), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(dense_size, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SpeedrunCNN(nn.Module):
    """Built to reach 99% within seconds on a CPU: conv 24 (5×5) → pool → conv 32 (3×3) → pool → dense → 10.

    The layout of tuomaso/train_mnist_fast (github.com/tuomaso/train_mnist_fast, MIT): pooling before the activation
    leaves every ReLU a quarter of the values, and no batch norm or dropout costs time in its single epoch.
    """

    def __init__(self, filters: tuple[int, int] = (24, 32), dense_size: int = 256) -> None:
        super().__init__()
        first, second = filters
        self.features = nn.Sequential(
            nn.Conv2d(1, first, 5), nn.MaxPool2d(2), nn.ReLU(inplace=True),  # 24×24 → 12×12
            nn.Conv2d(first, second, 3), nn.MaxPool2d(2), nn.ReLU(inplace=True),  # 10×10 → 5×5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(second * 5 * 5, dense_size), nn.ReLU(inplace=True), nn.Linear(dense_size, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with batch norm whose output is added to the block's input (through a 1×1 projection
    when the width or resolution changes): the identity path lets deeper stacks train as easily as shallow ones."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity() if stride == 1 and in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))
        self.out = nn.ReLU(inplace=True)  # its own module: Grad-CAM and the feature maps read the block's output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + self.shortcut(x))


class ResNet(nn.Module):
    """A small residual network for 28×28 digits (the reports' "deeper CNN architectures like ResNet"): a 3×3 stem
    and max-pool to 14×14, then stages of residual blocks, each after the first halving the resolution and widening;
    global average pooling → dropout → 10."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128), blocks: tuple[int, ...] = (2, 2, 2),
                 dropout: float = 0.1) -> None:
        super().__init__()
        if len(widths) != len(blocks) or min(blocks) < 1:
            raise ValueError(f"widths and blocks need one entry per stage, each stage at least one block: "
                             f"{widths}, {blocks}")
        layers: list[nn.Module] = [nn.Conv2d(1, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        channels = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks, strict=True)):
            for index in range(count):
                layers.append(ResidualBlock(channels, width, 2 if stage > 0 and index == 0 else 1))
                channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                        nn.Linear(channels, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class CRNN(nn.Module):
    """The reports' hybrid: a convolutional front end (conv 32 → pool → conv 64 → pool, 7×7 maps) whose 7 feature
    columns a recurrent layer reads left to right, as a handwriting reader scans a line; its last state → 10."""

    READING = Reading("column", 7, 4, "left to right")

    def __init__(self, cell: str = "gru", hidden_size: int = 128, filters: tuple[int, int] = (32, 64),
                 dropout: float = 0.2) -> None:
        super().__init__()
        if cell not in RECURRENT_CELLS or cell == "rnn":
            raise ValueError(f"cell must be 'gru' or 'lstm', not {cell!r}")
        first, second = filters
        self.features = nn.Sequential(
            nn.Conv2d(1, first, 3, padding=1, bias=False), nn.BatchNorm2d(first), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 14×14
            nn.Conv2d(first, second, 3, padding=1, bias=False), nn.BatchNorm2d(second), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 7×7
        )
        self.recurrent = RECURRENT_CELLS[cell](second * 7, hidden_size, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, 10))

    def _columns(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.features(x)  # (N, C, 7, 7)
        return maps.permute(0, 3, 1, 2).flatten(2)  # (N, 7 columns, C × 7 rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.recurrent(self._columns(x))
        return self.head(outputs[:, -1])

    def logits_after_each_step(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 7, 10): the answer had the reader stopped after each feature column (4 pixels of the digit each)."""
        outputs, _ = self.recurrent(self._columns(x))
        return self.head(outputs)


MOBILENET_VARIANTS = ("v3_small", "v2")


def mobilenet_variant(variant: str) -> tuple[Callable[..., nn.Module], Any]:
    """Torchvision's builder of a MobileNet variant and its ImageNet weights (a ``WeightsEnum`` member).

    Torchvision's models are imported here, when a MobileNet is built: importing them costs every process 1-2 s,
    most of which (a CLI command, a training of another model) never build one."""
    from torchvision import models

    return {"v3_small": (models.mobilenet_v3_small, models.MobileNet_V3_Small_Weights.IMAGENET1K_V1),
            "v2": (models.mobilenet_v2, models.MobileNet_V2_Weights.IMAGENET1K_V1)}[variant]
# ImageNet statistics, for the channels the pretrained stem expects; applied after undoing the dataset's normalisation.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def mobilenet_view(unit_images: torch.Tensor, size: int = 96) -> torch.Tensor:
    """(N, 1, 28, 28) in 0..1 → (N, 3, size, size): what MobileNet sees, before ImageNet's channel statistics."""
    resized = F.interpolate(unit_images, size=(size, size), mode="bilinear", align_corners=False)
    return resized.expand(-1, 3, -1, -1)


class MobileNetDigits(nn.Module):
    """Torchvision's MobileNet with a 10-class head; digits are resized to 96×96 and gray is copied to 3 channels."""

    channel_mean: torch.Tensor  # buffers, registered in __init__
    channel_std: torch.Tensor

    def __init__(self, variant: str = "v3_small", input_size: int = 96) -> None:
        super().__init__()
        if variant not in MOBILENET_VARIANTS:
            raise ValueError(f"variant must be one of {sorted(MOBILENET_VARIANTS)}, not {variant!r}")
        builder, _ = mobilenet_variant(variant)
        self.variant = variant
        self.input_size = input_size
        self.backbone = builder(weights=None, num_classes=10)
        self.register_buffer("channel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("channel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dataset = dataset_of(self)  # undo the normalisation of the dataset it is trained on
        rgb = mobilenet_view(x * dataset.std + dataset.mean, self.input_size)
        return self.backbone((rgb - self.channel_mean) / self.channel_std)

    def load_imagenet_backbone(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Copy ImageNet weights into everything but the final 1000-class layer, which stays new for 10 digits."""
        own = self.backbone.state_dict()
        compatible = {key: value for key, value in state_dict.items() if key in own and own[key].shape == value.shape}
        missing_body = [key for key in own if key not in compatible and not key.startswith("classifier")]
        if missing_body:
            raise ValueError(f"the weights do not fit MobileNet {self.variant}: {len(missing_body)} layers missing, "
                             f"e.g. {missing_body[0]}")
        self.backbone.load_state_dict(compatible, strict=False)
