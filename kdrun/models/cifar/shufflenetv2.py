"""ShuffleNet V2: Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN
Architecture Design", ECCV 2018.

The CIFAR variant of RepDistiller (CRD, ICLR 2020): a 1x1 stem to 24 channels (no stride, no
max-pool), three stages, each a stride-2 down-sampling unit followed by 3, 7 and 3 basic
units, a 1x1 conv to 1024 channels, global average pooling and a ``linear`` head. Net size 1
gives stage widths 116, 232, 464. Key names follow the reference (``conv1, bn1,
layer{1,2,3}.{i}.conv{1..5}/bn{1..5}, conv2, bn2, linear``); PyTorch's default init, as there.

Features: stem output after ReLU, each stage's output, the pooled 1024-d vector. ``preact``
follows the reference exactly: for a stage's last unit it is ``cat(identity half,
branch before ReLU)`` *before* the channel shuffle, so its channel order differs from
``stages``' (a learned 1x1 connector, as in AB, is indifferent to that order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.errors import choice_error
from kdrun.models.base import KDModel
from kdrun.models.cifar.common import Size2d, channel_shuffle, conv_size, global_pool, image_size, run_stages
from kdrun.models.features import FeatureInfo, Features

STEM = 24
# net size -> (stage widths, final conv width), blocks per stage; from the reference code.
CONFIGS: dict[float, tuple[tuple[int, int, int, int], tuple[int, int, int]]] = {
    0.2: ((40, 80, 160, 512), (3, 3, 3)),
    0.3: ((40, 80, 160, 512), (3, 7, 3)),
    0.5: ((48, 96, 192, 1024), (3, 7, 3)),
    1.0: ((116, 232, 464, 1024), (3, 7, 3)),
    1.5: ((176, 352, 704, 1024), (3, 7, 3)),
    2.0: ((224, 488, 976, 2048), (3, 7, 3)),
}


def _dw(channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False)


def _pw(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, bias=False)


class BasicUnit(nn.Module):
    """Split channels in half; transform the second half (1x1, 3x3 depthwise, 1x1); concat; shuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.conv1, self.bn1 = _pw(half, half), nn.BatchNorm2d(half)
        self.conv2, self.bn2 = _dw(half, 1), nn.BatchNorm2d(half)
        self.conv3, self.bn3 = _pw(half, half), nn.BatchNorm2d(half)

    def forward_pair(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, pre-activation as the reference defines it: see the module docstring)."""
        keep, branch = x.chunk(2, dim=1)
        branch = F.relu(self.bn1(self.conv1(branch)))
        branch = self.bn3(self.conv3(self.bn2(self.conv2(branch))))
        out = channel_shuffle(torch.cat([keep, F.relu(branch)], 1), 2)
        return out, torch.cat([keep, branch], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pair(x)[0]


class DownUnit(nn.Module):
    """Stride-2 unit: both branches see the whole input; each makes half the output channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.conv1, self.bn1 = _dw(in_channels, 2), nn.BatchNorm2d(in_channels)
        self.conv2, self.bn2 = _pw(in_channels, mid), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = _pw(in_channels, mid), nn.BatchNorm2d(mid)
        self.conv4, self.bn4 = _dw(mid, 2), nn.BatchNorm2d(mid)
        self.conv5, self.bn5 = _pw(mid, mid), nn.BatchNorm2d(mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], 1), 2)


class ShuffleNetV2(KDModel):
    def __init__(self, num_classes: int, in_channels: int, input_size: Size2d, net_size: float = 1.0) -> None:
        super().__init__()
        widths, blocks = CONFIGS[float(net_size)]
        self.conv1 = nn.Conv2d(in_channels, STEM, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM)
        planes, stages, sizes, size = STEM, [], [input_size], input_size
        for width, n in zip(widths[:3], blocks):
            stages.append(nn.Sequential(DownUnit(planes, width), *[BasicUnit(width) for _ in range(n)]))
            planes = width
            size = conv_size(size, stride=2)
            sizes.append(size)
        self.layer1, self.layer2, self.layer3 = stages
        self.conv2 = _pw(widths[2], widths[3])
        self.bn2 = nn.BatchNorm2d(widths[3])
        self.linear = nn.Linear(widths[3], num_classes)
        self.feature_info = FeatureInfo(
            stage_channels=(STEM, *widths[:3]),
            stage_sizes=tuple(sizes),
            pooled_dim=widths[3],
            num_classes=num_classes,
        )

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return global_pool(F.relu(self.bn2(self.conv2(x))))

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> Features:
        x = F.relu(self.bn1(self.conv1(x)))
        x, stages, pre = run_stages((self.layer1, self.layer2, self.layer3), x)
        pooled = self._head(x)
        return Features(logits=self.linear(pooled), stages=stages, preact=pre if preact else [], pooled=pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(self._head(x))


# RepDistiller's train_student.py / train_teacher.py: lr 0.01 instead of 0.05 for this family on CIFAR.
def shufflenetv2(num_classes: int, in_channels: int, input_size: tuple[int, ...], net_size: float) -> ShuffleNetV2:
    """ShuffleNet V2 for CIFAR; ``net_size`` 1 gives stages 116-232-464 (sizes 0.2-2 as in the reference)."""
    if float(net_size) not in CONFIGS:
        raise choice_error("shufflenetv2.net_size", net_size, CONFIGS)
    return ShuffleNetV2(num_classes, in_channels, image_size(input_size, "shufflenetv2"), net_size)
