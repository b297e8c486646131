"""Helpers shared by the CIFAR zoo: static shape arithmetic, pooling, stage runners, init.

Every zoo model works out its feature shapes from the input size in ``__init__`` (with
:func:`conv_size`), so the same builder serves 32x32 CIFAR and 8x8 digits. The reference
code's fixed-size average pools (``AvgPool2d(8)`` for ResNets, ``avg_pool2d(4)`` for
ShuffleNets) are global pools at 32x32; :func:`global_pool` is the same operation for any
input size and, like them, has no parameters, so state-dict keys are unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.models.base import conv_out

Size2d = tuple[int, int]


def image_size(input_size: tuple[int, ...], model: str) -> Size2d:
    """Check that ``input_size`` is (H, W) and return it as ints."""
    if len(input_size) != 2:
        raise ValueError(f"{model} needs 2-D images, got input size {tuple(input_size)}")
    return int(input_size[0]), int(input_size[1])


def conv_size(size: Size2d, kernel: int = 3, stride: int = 1, padding: int = 1) -> Size2d:
    """Output (H, W) of a convolution or pooling layer."""
    return conv_out(size[0], kernel, stride, padding), conv_out(size[1], kernel, stride, padding)


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """Average over the whole map and flatten to (B, C)."""
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: (B, g*k, H, W) -> interleave the g groups."""
    if groups == 1:
        return x
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def run_stage(stage: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a stage of blocks; return its output and the last block's pre-activation.

    The last block must have ``forward_pair(x) -> (out, preact)``; this mirrors the
    reference code's ``is_last`` blocks, which return both tensors.
    """
    for block in stage[:-1]:
        x = block(x)
    return stage[-1].forward_pair(x)


def run_stages(stages, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Run the stem output ``x`` through ``stages`` (see :func:`run_stage`); return the last output, every
    stage's output and every stage's pre-activation, both lists starting with ``x`` itself."""
    outs, pre = [x], [x]
    for stage in stages:
        x, p = run_stage(stage, x)
        outs.append(x)
        pre.append(p)
    return x, outs, pre


def init_kaiming(model: nn.Module) -> None:
    """Init of the reference ResNets: He-normal (fan_out) convs, BN weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_he_normal(model: nn.Module, linear_std: float | None) -> None:
    """Init of the reference WRN, VGG and MobileNetV2: N(0, sqrt(2/(k*k*out))) convs, zero biases.

    ``linear_std``: std of the classifier weights (VGG and MobileNetV2 use 0.01); ``None``
    keeps PyTorch's default weights and only zeroes the bias (WRN).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)
