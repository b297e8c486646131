"""Pieces shared by the feature-map methods: n-d layers, pooling two maps to one size, FitNet's regressor.

Every map is ``(B, C, *spatial)`` with one spatial axis (signals, ``cnn1d``) or two (images), so
the layers here pick ``Conv1d``/``Conv2d`` from the number of spatial axes in a model's
:class:`~kdrun.models.features.FeatureInfo`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_POOL = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d}


def conv(dims: int, *args, **kwargs) -> nn.Module:
    return _CONV[dims](*args, **kwargs)


def conv_transpose(dims: int, *args, **kwargs) -> nn.Module:
    return _CONV_T[dims](*args, **kwargs)


def batch_norm(dims: int, channels: int) -> nn.Module:
    return _BN[dims](channels)


def pool_to(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Adaptive average pooling of ``x`` to spatial ``size`` (a no-op when it already has it)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return _POOL[len(size)](x, tuple(size))


def match_sizes(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the larger map to the smaller's spatial size (RepDistiller's rule for AT, NST, FT, VID)."""
    size = tuple(min(x, y) for x, y in zip(a.shape[2:], b.shape[2:]))
    return pool_to(a, size), pool_to(b, size)


def regressor_fits(s_size: tuple[int, ...], t_size: tuple[int, ...]) -> bool:
    """Whether :class:`ConvRegressor` can map a student map of ``s_size`` onto ``t_size``."""
    return all(s == 2 * t for s, t in zip(s_size, t_size)) or all(2 * s == t for s, t in zip(s_size, t_size)) \
        or all(s >= t for s, t in zip(s_size, t_size))


class ConvRegressor(nn.Module):
    """A student map -> the teacher map's shape: conv, BN and (optionally) ReLU (RepDistiller's ``ConvReg``).

    The conv halves (stride 2), doubles (transposed, stride 2) or shrinks (valid kernel of
    ``1 + s - t``) the spatial size, as the reference does; a student map smaller than the
    teacher's, other than exactly half, cannot be matched (check with :func:`regressor_fits`).
    """

    def __init__(self, s_shape: tuple[int, ...], t_shape: tuple[int, ...], relu: bool = True) -> None:
        super().__init__()
        (s_c, *s_size), (t_c, *t_size) = s_shape, t_shape
        dims = len(s_size)
        if all(s == 2 * t for s, t in zip(s_size, t_size)):
            self.conv = conv(dims, s_c, t_c, kernel_size=3, stride=2, padding=1)
        elif all(2 * s == t for s, t in zip(s_size, t_size)):
            self.conv = conv_transpose(dims, s_c, t_c, kernel_size=4, stride=2, padding=1)
        elif all(s >= t for s, t in zip(s_size, t_size)):
            self.conv = conv(dims, s_c, t_c, kernel_size=tuple(1 + s - t for s, t in zip(s_size, t_size)))
        else:
            raise ValueError(f"student map {tuple(s_size)} cannot be regressed onto teacher map {tuple(t_size)}")
        self.bn = batch_norm(dims, t_c)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x
