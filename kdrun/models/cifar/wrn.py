"""Wide ResNets: Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016.

``wrn_D_K``: depth D = 6n+4, widening factor K; a 3x3 stem, three stages of n pre-activation
blocks (BN-ReLU-conv twice, channels 16K, 32K, 64K), a final BN-ReLU, global average pooling
and a linear head. Dropout is left out: the KD benchmark trains with dropRate 0. Module
names follow RepDistiller/mdistiller (``conv1, block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2,
convShortcut}, bn1, fc``).

Features follow RepDistiller: ``stages`` are the raw stem and stage outputs (pre-activation
networks have no ReLU there); ``preact[i]`` is ``stages[i]`` after the BN that comes next
(the next stage's first ``bn1``, or the final ``bn1``), i.e. the tensor just before a ReLU.
The reference calls those BNs a second time to get it, which in training mode updates their
running statistics twice; here each BN runs once and its output is reused (same values).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.models.base import KDModel, Part
from kdrun.models.cifar.common import conv_size, global_pool, image_size, init_he_normal
from kdrun.models.features import FeatureInfo, Features


class WideBlock(nn.Module):
    """Pre-activation basic block; a 1x1 shortcut conv on the activated input when channels change."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, padding=1, bias=False)
        self.convShortcut: nn.Module | None = None  # noqa: N815 (reference key name)
        if in_planes != out_planes:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor, normed: torch.Tensor | None = None) -> torch.Tensor:
        """``normed``: ``self.bn1(x)`` if the caller already has it."""
        act = F.relu(self.bn1(x) if normed is None else normed)
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return out + (x if self.convShortcut is None else self.convShortcut(act))


class WideStage(nn.Module):
    """A stage of ``n`` blocks, held under ``.layer`` as in the reference (``block1.layer.0...``)."""

    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        blocks = [WideBlock(in_planes, out_planes, stride)]
        blocks += [WideBlock(out_planes, out_planes, 1) for _ in range(n - 1)]
        self.layer = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor, normed: torch.Tensor | None = None) -> torch.Tensor:
        x = self.layer[0](x, normed)
        for block in self.layer[1:]:
            x = block(x)
        return x

    @property
    def first_bn(self) -> nn.BatchNorm2d:
        return self.layer[0].bn1


class WideResNet(KDModel):
    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.block1 = WideStage(n, widths[0], widths[1], 1)
        self.block2 = WideStage(n, widths[1], widths[2], 2)
        self.block3 = WideStage(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        init_he_normal(self, linear_std=None)

        s2 = conv_size(input_size, stride=2)
        s3 = conv_size(s2, stride=2)
        self.feature_info = FeatureInfo(
            stage_channels=widths,
            stage_sizes=(input_size, input_size, s2, s3),
            pooled_dim=widths[3],
            num_classes=num_classes,
        )

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> Features:
        x = self.conv1(x)
        stages, pre = [x], [x]
        normed = self.block1.first_bn(x)
        next_bns = (self.block2.first_bn, self.block3.first_bn, self.bn1)
        for stage, next_bn in zip((self.block1, self.block2, self.block3), next_bns):
            x = stage(x, normed)
            normed = next_bn(x)
            stages.append(x)
            pre.append(normed)
        pooled = global_pool(F.relu(normed))
        return Features(logits=self.fc(pooled), stages=stages, preact=pre if preact else [], pooled=pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(global_pool(F.relu(self.bn1(x))))

    def split_stages(self) -> tuple[list[nn.Module], list[int]]:
        """Stem, stage 1, stage 2, then stage 3 with the final batch norm and the classifier."""
        head = Part(_head, block3=self.block3, bn1=self.bn1, fc=self.fc)
        return [self.conv1, self.block1, self.block2, head], list(self.feature_info.stage_channels[:3])


def _head(p: Part, h: torch.Tensor) -> torch.Tensor:
    return p.fc(global_pool(F.relu(p.bn1(p.block3(h)))))


def wrn_16_1(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> WideResNet:
    """WRN-16-1 (stages 16-32-64)."""
    return WideResNet(16, 1, num_classes, in_channels, image_size(input_size, "wrn_16_1"))


def wrn_16_2(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> WideResNet:
    """WRN-16-2 (stages 32-64-128)."""
    return WideResNet(16, 2, num_classes, in_channels, image_size(input_size, "wrn_16_2"))


def wrn_40_1(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> WideResNet:
    """WRN-40-1 (stages 16-32-64)."""
    return WideResNet(40, 1, num_classes, in_channels, image_size(input_size, "wrn_40_1"))


def wrn_40_2(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> WideResNet:
    """WRN-40-2 (stages 32-64-128), RepDistiller's teacher."""
    return WideResNet(40, 2, num_classes, in_channels, image_size(input_size, "wrn_40_2"))
