"""ShuffleNet (v1): Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural
Network for Mobile Devices", CVPR 2018.

The CIFAR variant of RepDistiller (CRD, ICLR 2020), groups 3: a 1x1 stem to 24 channels
(no stride, no max-pool, since CIFAR images are small), three stages of 4, 8 and 4
bottlenecks with widths 240, 480 and 960, global average pooling and a ``linear`` head.
Each stage opens with a stride-2 block whose output concatenates the residual branch with
a 3x3 average-pooled shortcut. Key names follow the reference (``conv1, bn1,
layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2,conv3,bn3}, linear``); weights keep PyTorch's
default init, as there.

Features: stem output after ReLU, each stage's output, the pooled vector; ``preact`` is each
stage's last block before its final ReLU (the stem entry is the post-ReLU stem).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.models.base import KDModel
from kdrun.models.cifar.common import Size2d, channel_shuffle, conv_size, global_pool, image_size, run_stages
from kdrun.models.features import FeatureInfo, Features

STEM = 24


class ShuffleUnit(nn.Module):
    """Grouped 1x1, channel shuffle, 3x3 depthwise, grouped 1x1; add (stride 1) or concat (stride 2).

    ``first_groups`` is the group count of the first 1x1 conv: 1 in the network's very first
    unit, whose 24-channel input is too narrow to split (paper, Sec. 3.3).
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int, groups: int, first_groups: int) -> None:
        super().__init__()
        mid = out_planes // 4
        self.stride = stride
        self.shuffle_groups = first_groups
        self.conv1 = nn.Conv2d(in_planes, mid, 1, groups=first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_planes, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)

    def forward_pair(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, output before the final ReLU)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.shuffle_groups)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            pre = torch.cat([out, F.avg_pool2d(x, 3, stride=2, padding=1)], 1)
        else:
            pre = out + x
        return F.relu(pre), pre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pair(x)[0]


class ShuffleNetV1(KDModel):
    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        input_size: Size2d,
        widths: tuple[int, int, int] = (240, 480, 960),
        blocks: tuple[int, int, int] = (4, 8, 4),
        groups: int = 3,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, STEM, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM)
        planes = STEM
        stages = []
        for width, n in zip(widths, blocks):
            # The stride-2 unit's residual branch makes only the channels the shortcut lacks.
            units = [ShuffleUnit(planes, width - planes, 2, groups, 1 if planes == STEM else groups)]
            units += [ShuffleUnit(width, width, 1, groups, groups) for _ in range(n - 1)]
            stages.append(nn.Sequential(*units))
            planes = width
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(widths[-1], num_classes)

        s1 = conv_size(input_size, stride=2)
        s2 = conv_size(s1, stride=2)
        s3 = conv_size(s2, stride=2)
        self.feature_info = FeatureInfo(
            stage_channels=(STEM, *widths),
            stage_sizes=(input_size, s1, s2, s3),
            pooled_dim=widths[-1],
            num_classes=num_classes,
        )

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> Features:
        x = F.relu(self.bn1(self.conv1(x)))
        x, stages, pre = run_stages((self.layer1, self.layer2, self.layer3), x)
        pooled = global_pool(x)
        return Features(logits=self.linear(pooled), stages=stages, preact=pre if preact else [], pooled=pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(global_pool(x))


# RepDistiller's train_student.py / train_teacher.py: lr 0.01 instead of 0.05 for this family on CIFAR.
def shufflenetv1(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> ShuffleNetV1:
    """ShuffleNet v1 for CIFAR, groups 3 (stages 240-480-960)."""
    return ShuffleNetV1(num_classes, in_channels, image_size(input_size, "shufflenetv1"))
