"""The convolutional network and the wrapper that is exported to ONNX."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# Mean and standard deviation of the MNIST training pixels scaled to [0, 1].
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


class Net(nn.Module):
    """Two conv layers (10 and 20 channels, kernel 5) and a 320-50-10 classifier.

    The input is pixels in [0, 1], shape [N, 1, 28, 28]. The model normalises them with
    MNIST's mean and standard deviation itself, so the exported graph takes raw pixels.
    `forward` returns logits.
    """

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(dropout)
        self.fc1 = nn.Linear(320, 50)
        self.fc1_drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(50, 10)
        self.register_buffer("mean", torch.tensor(MNIST_MEAN))
        self.register_buffer("std", torch.tensor(MNIST_STD))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        x = F.relu(F.max_pool2d(self.conv1(x), 2))  # [N, 10, 12, 12]
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))  # [N, 20, 4, 4]
        x = torch.flatten(x, 1)  # [N, 320]
        x = self.fc1_drop(F.relu(self.fc1(x)))
        return self.fc2(x)


class WithSoftmax(nn.Module):
    """Wrap a logits model so that it returns class probabilities; used only for export."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.model(x), dim=1)


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
