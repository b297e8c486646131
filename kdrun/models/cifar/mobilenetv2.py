"""MobileNetV2: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.

The CIFAR variant of RepDistiller (CRD, ICLR 2020), taken there from the RCO paper's code:
a stride-2 3x3 stem, seven groups of inverted residual blocks, a 1x1 conv to 1280 channels,
global average pooling and ``classifier.0`` (a Linear inside a Sequential, as in the
reference's keys). The KD benchmark's ``mobilenetv2`` is width 0.5, expansion 6
(RepDistiller's ``mobile_half``). The reference requires inputs divisible by 32 because of
a fixed-size average pool; the global pool used here has no such limit and no parameters.

Features follow RepDistiller: stem output, then the outputs of block groups 1, 2, 4 and 6.
Those are linear-bottleneck outputs (no ReLU follows), so ``preact`` equals ``stages``, as
in the reference, which ignores ``preact``.
"""

from __future__ import annotations

import torch
from torch import nn

from kdrun.models.base import KDModel
from kdrun.models.cifar.common import Size2d, conv_size, global_pool, image_size, init_he_normal
from kdrun.models.features import FeatureInfo, Features

# (expansion, channels, blocks, first stride) per group; expansion None means "use the model's".
GROUPS: tuple[tuple[int | None, int, int, int], ...] = (
    (1, 16, 1, 1),
    (None, 24, 2, 1),
    (None, 32, 3, 2),
    (None, 64, 4, 2),
    (None, 96, 3, 1),
    (None, 160, 3, 2),
    (None, 320, 1, 1),
)
FEATURE_GROUPS = (1, 2, 4, 6)  # groups whose outputs are stages[1..4]


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expand, 3x3 depthwise, 1x1 linear projection; identity shortcut when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.use_shortcut = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_shortcut else self.conv(x)


class MobileNetV2(KDModel):
    def __init__(
        self, num_classes: int, in_channels: int, input_size: Size2d, width_mult: float, expansion: int
    ) -> None:
        super().__init__()
        channels = int(32 * width_mult)
        self.conv1 = _conv_bn_relu(in_channels, channels, 3, 2)
        size = conv_size(input_size, stride=2)
        stage_channels, stage_sizes = [channels], [size]
        self.blocks = nn.ModuleList()
        for index, (t, c, n, s) in enumerate(GROUPS):
            out = int(c * width_mult)
            layers = []
            for stride in [s] + [1] * (n - 1):
                layers.append(InvertedResidual(channels, out, stride, expansion if t is None else t))
                channels = out
            self.blocks.append(nn.Sequential(*layers))
            size = conv_size(size, stride=s)
            if index in FEATURE_GROUPS:
                stage_channels.append(channels)
                stage_sizes.append(size)
        last = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv2 = _conv_bn_relu(channels, last, 1, 1)
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))
        init_he_normal(self, linear_std=0.01)
        self.feature_info = FeatureInfo(
            stage_channels=tuple(stage_channels),
            stage_sizes=tuple(stage_sizes),
            pooled_dim=last,
            num_classes=num_classes,
        )

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> Features:
        x = self.conv1(x)
        stages = [x]
        for index, group in enumerate(self.blocks):
            x = group(x)
            if index in FEATURE_GROUPS:
                stages.append(x)
        pooled = global_pool(self.conv2(x))
        return Features(
            logits=self.classifier(pooled), stages=stages, preact=list(stages) if preact else [], pooled=pooled
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for group in self.blocks:
            x = group(x)
        return self.classifier(global_pool(self.conv2(x)))


# RepDistiller's train_student.py / train_teacher.py: lr 0.01 instead of 0.05 for this family on CIFAR.
def mobilenetv2(
    num_classes: int, in_channels: int, input_size: tuple[int, ...], width_mult: float, expansion: int
) -> MobileNetV2:
    """MobileNetV2 for CIFAR (default width 0.5, expansion 6: RepDistiller's mobile_half)."""
    return MobileNetV2(num_classes, in_channels, image_size(input_size, "mobilenetv2"), width_mult, expansion)
