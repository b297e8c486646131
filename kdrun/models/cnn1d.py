"""A small 1-D CNN for signal data, after the MNIST-1D paper's ConvNet (Greydanus, 2020)."""

from __future__ import annotations

import torch
from torch import nn

from kdrun.models.base import KDModel, Part, conv_out
from kdrun.models.features import FeatureInfo, Features

NORMS = ("none", "batch")


class CNN1D(KDModel):
    """Stages, each a strided conv (kernel 5, stride 2, padding 1) + ReLU; a linear head on the flattened map.

    ``norm="batch"`` puts batch norm between each conv and its ReLU (conv without bias, as in the CIFAR zoo).
    Without it a narrow student is unstable under the distillation losses at the default lr 0.05 (see
    docs/cpu_study.md); ``"none"`` stays the default so the MNIST-1D paper's model and cached teachers keep
    their weights and state-dict keys.

    ``depth`` > 1 adds ``depth - 1`` conv layers (kernel 3, stride 1, same length) after each stage's strided
    one: a deeper model with the same widths and map sizes, as the CIFAR zoo's teachers are deeper versions
    of their students (resnet56 and resnet20). Their modules live in ``deep`` (absent at depth 1).
    """

    def __init__(self, num_classes: int, in_channels: int, length: int, channels: list[int],
                 norm: str = "none", depth: int = 1) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        batch = norm == "batch"
        self.convs = nn.ModuleList(nn.Conv1d(a, b, 5, stride=2, padding=1, bias=not batch)
                                   for a, b in zip(widths[:-1], widths[1:]))
        # only present with norm="batch": the default model keeps its parameters and state-dict keys
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in channels) if batch else None
        self.deep = nn.ModuleList(StageTail(b, depth - 1, batch) for b in channels) if depth > 1 else None
        sizes = []
        for _ in channels:
            length = conv_out(length, kernel=5, stride=2, padding=1)
            sizes.append((length,))
        self.fc = nn.Linear(channels[-1] * length, num_classes)
        self.feature_info = FeatureInfo(
            stage_channels=tuple(channels),
            stage_sizes=tuple(sizes),
            pooled_dim=channels[-1] * length,
            num_classes=num_classes,
        )

    def _layer(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``i`` up to its last ReLU (the pre-activation)."""
        z = self.convs[i](x)
        z = z if self.norms is None else self.norms[i](z)
        return z if self.deep is None else self.deep[i](z)

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> Features:
        stages, pre = [], []
        for i in range(len(self.convs)):
            z = self._layer(i, x)
            x = torch.relu(z)
            pre.append(z)
            stages.append(x)
        pooled = x.flatten(1)
        return Features(logits=self.fc(pooled), stages=stages, preact=pre if preact else [], pooled=pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(len(self.convs)):
            x = torch.relu(self._layer(i, x))
        return self.fc(x.flatten(1))

    def split_stages(self) -> tuple[list[nn.Module], list[int]]:
        """Each stage (its conv layers and their batch norm, if any); the last one with the classifier."""
        norms = self.norms if self.norms is not None else [nn.Identity() for _ in self.convs]
        tails = self.deep if self.deep is not None else [nn.Identity() for _ in self.convs]
        stages = [dict(conv=conv, norm=norm, tail=tail) for conv, norm, tail in zip(self.convs, norms, tails)]
        parts = [Part(_layer, **stage) for stage in stages[:-1]] + [Part(_head, **stages[-1], fc=self.fc)]
        return parts, [conv.out_channels for conv in self.convs[:-1]]


class StageTail(nn.Module):
    """The conv layers after a stage's strided one (``depth`` > 1): ReLU, conv (kernel 3, same length)
    [, batch norm], ``layers`` times; takes and returns a pre-activation."""

    def __init__(self, channels: int, layers: int, batch: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, 3, padding=1, bias=not batch)
                                   for _ in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(channels) for _ in range(layers)) if batch else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for j, conv in enumerate(self.convs):
            z = conv(torch.relu(z))
            z = z if self.norms is None else self.norms[j](z)
        return z


def _layer(p: Part, x: torch.Tensor) -> torch.Tensor:
    return torch.relu(p.tail(p.norm(p.conv(x))))


def _head(p: Part, h: torch.Tensor) -> torch.Tensor:
    return p.fc(_layer(p, h).flatten(1))


def cnn1d(num_classes: int, in_channels: int, input_size: tuple[int, ...], channels: list[int],
          norm: str = "none", depth: int = 1) -> CNN1D:
    """1-D CNN for signals (MNIST-1D); ``channels`` per stage, ``norm`` none|batch, ``depth`` convs per stage."""
    if len(input_size) != 1:
        raise ValueError(f"cnn1d needs 1-D signals, got input size {input_size}")
    if norm not in NORMS:
        raise ValueError(f"norm={norm} is not valid; valid choices: {', '.join(NORMS)}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth={depth} is not valid; it is the number of conv layers per stage, an integer >= 1")
    return CNN1D(num_classes, in_channels, input_size[0], list(channels), norm, depth)
