"""CIFAR ResNets: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (Sec. 4.2).

Depth 6n+2: a 3x3 stem, three stages of n basic blocks (stride 1, 2, 2), global average
pooling and a linear head. ``resnet8x4``/``resnet32x4`` are the 4x-wide variants introduced
by RepDistiller (CRD, Tian et al., ICLR 2020). Module names follow RepDistiller/mdistiller
(``conv1, bn1, layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2,downsample}, fc``) so their published
checkpoints load with ``strict=True``.

Features follow RepDistiller's ``feat`` list: stem output (after ReLU), the output of each
stage, and the pooled vector; ``preact`` holds each stage's sum before its last ReLU (the
stem entry is the post-ReLU stem, as in the reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.models.base import KDModel, Part
from kdrun.models.cifar.common import conv_size, global_pool, image_size, init_kaiming, run_stages
from kdrun.models.features import FeatureInfo, Features

Widths = tuple[int, int, int, int]  # stem, stage 1, stage 2, stage 3


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut (1x1 conv + BN when shape changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward_pair(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, output before the final ReLU)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        pre = out + (x if self.downsample is None else self.downsample(x))
        return F.relu(pre), pre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pair(x)[0]


class ResNet(KDModel):
    """``widths`` = (stem, stage1, stage2, stage3) channels."""

    def __init__(
        self, depth: int, widths: Widths, num_classes: int, in_channels: int, input_size: tuple[int, int]
    ) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._stage(widths[0], widths[1], n, stride=1)
        self.layer2 = self._stage(widths[1], widths[2], n, stride=2)
        self.layer3 = self._stage(widths[2], widths[3], n, stride=2)
        self.fc = nn.Linear(widths[3], num_classes)
        init_kaiming(self)

        s1 = input_size
        s2 = conv_size(s1, stride=2)
        s3 = conv_size(s2, stride=2)
        self.feature_info = FeatureInfo(
            stage_channels=tuple(widths),
            stage_sizes=(input_size, s1, s2, s3),
            pooled_dim=widths[3],
            num_classes=num_classes,
        )

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride)]
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> Features:
        x = F.relu(self.bn1(self.conv1(x)))
        x, stages, pre = run_stages((self.layer1, self.layer2, self.layer3), x)
        pooled = global_pool(x)
        return Features(logits=self.fc(pooled), stages=stages, preact=pre if preact else [], pooled=pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(global_pool(x))

    def split_stages(self) -> tuple[list[nn.Module], list[int]]:
        """Stem, stage 1, stage 2, then stage 3 with the classifier."""
        stem = Part(_stem, conv1=self.conv1, bn1=self.bn1)
        return [stem, self.layer1, self.layer2, Part(_head, layer3=self.layer3, fc=self.fc)], \
            list(self.feature_info.stage_channels[:3])


def _stem(p: Part, x: torch.Tensor) -> torch.Tensor:
    return F.relu(p.bn1(p.conv1(x)))


def _head(p: Part, h: torch.Tensor) -> torch.Tensor:
    return p.fc(global_pool(p.layer3(h)))


def _build(
    depth: int, widths: Widths, num_classes: int, in_channels: int, input_size: tuple[int, ...], name: str
) -> ResNet:
    return ResNet(depth, widths, num_classes, in_channels, image_size(input_size, name))


_NARROW = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)


def resnet8(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> ResNet:
    """ResNet-8 for CIFAR (stages 16-32-64)."""
    return _build(8, _NARROW, num_classes, in_channels, input_size, "resnet8")


def resnet14(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> ResNet:
    """ResNet-14 for CIFAR (stages 16-32-64)."""
    return _build(14, _NARROW, num_classes, in_channels, input_size, "resnet14")


def resnet20(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> ResNet:
    """ResNet-20 for CIFAR (stages 16-32-64)."""
    return _build(20, _NARROW, num_classes, in_channels, input_size, "resnet20")


def resnet32(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> ResNet:
    """ResNet-32 for CIFAR (stages 16-32-64)."""
    return _build(32, _NARROW, num_classes, in_channels, input_size, "resnet32")


def resnet44(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> ResNet:
    """ResNet-44 for CIFAR (stages 16-32-64)."""
    return _build(44, _NARROW, num_classes, in_channels, input_size, "resnet44")


def resnet56(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> ResNet:
    """ResNet-56 for CIFAR (stages 16-32-64)."""
    return _build(56, _NARROW, num_classes, in_channels, input_size, "resnet56")


def resnet110(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> ResNet:
    """ResNet-110 for CIFAR (stages 16-32-64)."""
    return _build(110, _NARROW, num_classes, in_channels, input_size, "resnet110")


def resnet8x4(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> ResNet:
    """ResNet-8, 4x wide (stem 32, stages 64-128-256), RepDistiller's student."""
    return _build(8, _WIDE, num_classes, in_channels, input_size, "resnet8x4")


def resnet32x4(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> ResNet:
    """ResNet-32, 4x wide (stem 32, stages 64-128-256), RepDistiller's teacher."""
    return _build(32, _WIDE, num_classes, in_channels, input_size, "resnet32x4")
