"""VGG with batch norm: Simonyan & Zisserman, "Very Deep Convolutional Networks for
Large-Scale Image Recognition", ICLR 2015; CIFAR variant of RepDistiller (CRD, ICLR 2020).

Five blocks (``block0..block4``) of [3x3 conv with bias, BN, ReLU]; the last ReLU of each
block is applied in ``forward`` so its input is available as the pre-activation. Max-pools
(2x2) follow blocks 0-3, then global average pooling and one linear ``classifier`` (the
fully connected layers of the ImageNet VGG are removed). ``vgg8`` is RepDistiller's
one-conv-per-block configuration "S".

Pooling is decided from the input size when the model is built. The reference always pools
after blocks 0-2 and after block 3 only for 64x64 inputs. Here a pool after blocks 0-2 is
skipped only when the map is already 1 pixel wide (so 8x8 digits reach 1x1 and stay
there), and the pool after block 3 is kept only while the map is at least 8x8, which gives
the reference's choice at both 32x32 (skip) and 64x64 (keep). Pools have no parameters, so
keys and counts never depend on the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.models.base import KDModel
from kdrun.models.cifar.common import Size2d, conv_size, global_pool, image_size, init_he_normal
from kdrun.models.features import FeatureInfo, Features

Config = tuple[tuple[int, ...], ...]  # conv widths of block0..block4

CONFIGS: dict[str, Config] = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


def _block(in_channels: int, widths: tuple[int, ...]) -> nn.Sequential:
    """[conv, BN, ReLU] per width, without the final ReLU."""
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv2d(in_channels, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        in_channels = w
    return nn.Sequential(*layers[:-1])


def _keep_pool(index: int, size: Size2d) -> bool:
    """Whether to max-pool after block ``index`` given its output size (see module docstring)."""
    return min(size) >= (8 if index == 3 else 2)


class VGG(KDModel):
    def __init__(self, config: Config, num_classes: int, in_channels: int, input_size: Size2d) -> None:
        super().__init__()
        self.block0 = _block(in_channels, config[0])
        self.block1 = _block(config[0][-1], config[1])
        self.block2 = _block(config[1][-1], config[2])
        self.block3 = _block(config[2][-1], config[3])
        self.block4 = _block(config[3][-1], config[4])
        self.classifier = nn.Linear(config[4][-1], num_classes)
        init_he_normal(self, linear_std=0.01)

        sizes, pools = [], []
        size = input_size
        for index in range(5):
            sizes.append(size)
            pool = index < 4 and _keep_pool(index, size)
            pools.append(pool)
            if pool:
                size = conv_size(size, kernel=2, stride=2, padding=0)
        self.pool_after = tuple(pools)
        channels = tuple(c[-1] for c in config)
        self.feature_info = FeatureInfo(
            stage_channels=channels, stage_sizes=tuple(sizes), pooled_dim=channels[-1], num_classes=num_classes
        )

    def _blocks(self) -> tuple[nn.Sequential, ...]:
        return (self.block0, self.block1, self.block2, self.block3, self.block4)

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> Features:
        stages, pre = [], []
        for block, pool in zip(self._blocks(), self.pool_after):
            z = block(x)
            x = F.relu(z)
            stages.append(x)
            pre.append(z)
            if pool:
                x = F.max_pool2d(x, 2)
        pre[0] = stages[0]  # the reference's preact list starts with the post-ReLU stem
        pooled = global_pool(x)
        return Features(logits=self.classifier(pooled), stages=stages, preact=pre if preact else [], pooled=pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, pool in zip(self._blocks(), self.pool_after):
            x = F.relu(block(x))
            if pool:
                x = F.max_pool2d(x, 2)
        return self.classifier(global_pool(x))


def _build(name: str, num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> VGG:
    return VGG(CONFIGS[name], num_classes, in_channels, image_size(input_size, name))


def vgg8(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> VGG:
    """VGG-8 with BN (one conv per block), RepDistiller's student."""
    return _build("vgg8", num_classes, in_channels, input_size)


def vgg11(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> VGG:
    """VGG-11 with BN (configuration A)."""
    return _build("vgg11", num_classes, in_channels, input_size)


def vgg13(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> VGG:
    """VGG-13 with BN (configuration B), RepDistiller's teacher."""
    return _build("vgg13", num_classes, in_channels, input_size)


def vgg16(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> VGG:
    """VGG-16 with BN (configuration D)."""
    return _build("vgg16", num_classes, in_channels, input_size)


def vgg19(num_classes: int, in_channels: int, input_size: tuple[int, ...]) -> VGG:
    """VGG-19 with BN (configuration E)."""
    return _build("vgg19", num_classes, in_channels, input_size)
