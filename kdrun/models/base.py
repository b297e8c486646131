"""Base class of every kdrun model: plain logits from ``forward``, features on request."""

from __future__ import annotations

import torch
from torch import nn

from kdrun.models.features import FeatureInfo, Features


class KDModel(nn.Module):
    """A classifier that can also expose its intermediate features.

    Subclasses set ``self.feature_info`` in ``__init__`` (computed from the input size, not
    from a dummy forward pass) and implement ``forward_features``. ``forward`` returns
    logits only; subclasses may override it with a path that skips feature bookkeeping.
    """

    feature_info: FeatureInfo

    def forward_features(self, x: torch.Tensor, preact: bool = False) -> Features:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).logits

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def conv_out(size: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> int:
    """Output length of a convolution or pooling along one axis."""
    return (size + 2 * padding - kernel) // stride + 1
