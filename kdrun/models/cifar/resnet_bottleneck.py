"""ResNet-50 with a CIFAR stem: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.

The ImageNet bottleneck ResNet-50 (stages of 3, 4, 6, 3 blocks; widths 256-512-1024-2048)
with the 7x7 stride-2 stem and max-pool replaced by one 3x3 stride-1 conv, as in
RepDistiller's ``resnetv2.py`` (the CRD benchmark's ``ResNet50`` teacher). Key names follow
the reference: ``conv1, bn1, layer{1..4}.{i}.{conv1..3,bn1..3,shortcut.{0,1}}, linear``.

Features: stem output after ReLU, the four stage outputs, the pooled 2048-d vector;
``preact`` holds each stage's sum before its last ReLU (the stem entry is the post-ReLU stem).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.models.base import KDModel
from kdrun.models.cifar.common import Size2d, conv_size, global_pool, image_size, init_kaiming, run_stages
from kdrun.models.features import FeatureInfo, Features

EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand x4; 1x1 conv + BN shortcut when shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * EXPANSION
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        # An empty Sequential (identity, no keys) when shapes match, as in the reference.
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes)
            )

    def forward_pair(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, output before the final ReLU)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        pre = self.bn3(self.conv3(out)) + self.shortcut(x)
        return F.relu(pre), pre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pair(x)[0]


class BottleneckResNet(KDModel):
    def __init__(
        self, blocks: tuple[int, int, int, int], num_classes: int, in_channels: int, input_size: Size2d, stem: int = 64
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stem, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        in_planes, size = stem, input_size
        channels, sizes, layers = [stem], [input_size], []
        for index, n in enumerate(blocks):
            planes, stride = stem * 2**index, 1 if index == 0 else 2
            units = [Bottleneck(in_planes, planes, stride)]
            in_planes = planes * EXPANSION
            units += [Bottleneck(in_planes, planes) for _ in range(n - 1)]
            layers.append(nn.Sequential(*units))
            size = conv_size(size, stride=stride)
            channels.append(in_planes)
            sizes.append(size)
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(in_planes, num_classes)
        init_kaiming(self)
        self.feature_info = FeatureInfo(
            stage_channels=tuple(channels), stage_sizes=tuple(sizes), pooled_dim=in_planes, num_classes=num_classes
        )

    def _layers(self) -> tuple[nn.Sequential, ...]:
        return (self.layer1, self.layer2, self.layer3, self.layer4)

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> Features:
        x = F.relu(self.bn1(self.conv1(x)))
        x, stages, pre = run_stages(self._layers(), x)
        pooled = global_pool(x)
        return Features(logits=self.linear(pooled), stages=stages, preact=pre if preact else [], pooled=pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for layer in self._layers():
            x = layer(x)
        return self.linear(global_pool(x))


def resnet50(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> BottleneckResNet:
    """ResNet-50 (bottleneck) with a CIFAR 3x3 stem, RepDistiller's ResNet50 teacher."""
    return BottleneckResNet((3, 4, 6, 3), num_classes, in_channels, image_size(input_size, "resnet50"))
