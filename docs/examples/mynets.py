"""An example of your own models for kdrun (docs/models_and_data.md): a factory and a class, plain nn.Modules."""

import torch
from torch import nn


class Net(nn.Module):
    """A small CNN: a stem and two stages (tap them by name: teacher.taps=[layer1,layer2])."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
        self.layer1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width),
                                    nn.ReLU())
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer2(self.layer1(self.stem(x))).mean((2, 3)))


def make_teacher(num_classes: int, in_channels: int, width: int = 64) -> nn.Module:
    """kdrun passes num_classes, in_channels (and input_size) because the signature names them."""
    return Net(num_classes, in_channels, width)
