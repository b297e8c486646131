"""A tiny synthetic image dataset for tests and smoke runs: generated in memory, learnable in seconds.

Each class has a fixed colour (a per-channel offset, which survives global average pooling) and a
fixed random texture (which convolutions and MLPs pick up); every sample is its class's pattern
plus Gaussian noise. Train and test share the patterns and differ in noise. Same seed, same data.
``generate_inputs(n)`` draws n more samples the same way (a generated transfer set for tests).
"""

from __future__ import annotations

import torch

from kdrun.data.base import DataBundle, DataInfo, TensorData
from kdrun.errors import KdrunError


def _check_positive(**values: float) -> None:
    for key, value in values.items():
        if value < 1:
            raise KdrunError(f"dataset.{key}={value} is not valid; use a positive integer")


def load_synthetic(
    num_train: int = 256,
    num_test: int = 128,
    num_classes: int = 4,
    in_channels: int = 3,
    size: int = 8,
    seed: int = 0,
    noise: float = 1.0,
) -> DataBundle:
    _check_positive(num_train=num_train, num_test=num_test, in_channels=in_channels, size=size)
    if num_classes < 2:
        raise KdrunError(f"dataset.num_classes={num_classes} is not valid; use 2 or more classes")
    g = torch.Generator().manual_seed(seed)
    colour = torch.randn(num_classes, in_channels, 1, 1, generator=g)
    texture = torch.randn(num_classes, in_channels, size, size, generator=g)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]  # balanced classes
        x = colour[y] + texture[y] + noise * torch.randn(n, in_channels, size, size, generator=g)
        return x, y

    (x, y), (xt, yt) = draw(num_train), draw(num_test)

    def generate_inputs(n: int) -> torch.Tensor:
        g.manual_seed(seed + 1)  # fresh noise, and the same inputs on every call
        return draw(n)[0]

    info = DataInfo("synthetic", "image", in_channels, (size, size), num_classes, num_train, num_test)
    return DataBundle(info, TensorData(x, y), TensorData(xt, yt), y.clone(), generate_inputs=generate_inputs)
