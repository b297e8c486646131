"""Fully connected networks, as in Hinton et al.'s MNIST experiment (1200-1200 teacher, 800-800 student)."""

from __future__ import annotations

import math

import torch
from torch import nn

from kdrun.models.base import KDModel, Part
from kdrun.models.features import FeatureInfo, Features


class MLP(KDModel):
    def __init__(self, num_classes: int, in_features: int, hidden: list[int], dropout: float = 0.0) -> None:
        super().__init__()
        sizes = [in_features, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(sizes[-1], num_classes)
        self.feature_info = FeatureInfo(
            stage_channels=tuple(hidden),
            stage_sizes=tuple(() for _ in hidden),
            pooled_dim=sizes[-1],
            num_classes=num_classes,
        )

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> Features:
        h = x.flatten(1)
        stages, pre = [], []
        for layer in self.layers:
            z = layer(h)
            h = self.dropout(torch.relu(z))
            pre.append(z)
            stages.append(h)
        return Features(logits=self.fc(h), stages=stages, preact=pre if preact else [], pooled=h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for layer in self.layers:
            h = self.dropout(torch.relu(layer(h)))
        return self.fc(h)

    def split_stages(self) -> tuple[list[nn.Module], list[int]]:
        """The flattening, each hidden layer, and the last hidden layer with the classifier: a boundary before
        each hidden layer (before the first one, branches share nothing but the input)."""
        hidden = [Part(_hidden, layer=layer, dropout=self.dropout) for layer in self.layers[:-1]]
        head = Part(_head, layer=self.layers[-1], dropout=self.dropout, fc=self.fc)
        return [Part(_flatten), *hidden, head], [layer.in_features for layer in self.layers]


def _flatten(p: Part, x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1)


def _hidden(p: Part, h: torch.Tensor) -> torch.Tensor:
    return p.dropout(torch.relu(p.layer(h)))


def _head(p: Part, h: torch.Tensor) -> torch.Tensor:
    return p.fc(_hidden(p, h))


def mlp(num_classes: int, in_channels: int, input_size: tuple[int, ...], hidden: list[int], dropout: float) -> MLP:
    """Multi-layer perceptron on flattened inputs; ``hidden`` sets the layer widths."""
    if not hidden:
        raise ValueError("mlp needs at least one hidden layer")
    return MLP(num_classes, in_channels * math.prod(input_size), list(hidden), dropout)
