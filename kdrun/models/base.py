"""Base class of every kdrun model: plain logits from ``forward``, features on request."""

from __future__ import annotations

from collections.abc import Callable

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

    def split_stages(self) -> tuple[list[nn.Module], list[int]]:
        """``(parts, channels)``: the model as a chain of parts, ``forward(x) == parts[-1](...parts[0](x))``,
        sharing this model's modules. Each boundary between two parts is a depth where the model can be branched
        (collaborative learning's heads split at several; ONE's at the last, before the last stage); the last
        part holds the classifier. ``channels[i]`` is the channel count after part ``i`` (one entry per
        boundary). Models that declare their stages implement it; the others raise NotImplementedError."""
        raise NotImplementedError

    def split_last_stage(self) -> tuple[nn.Module, nn.Module, int]:
        """``(trunk, head, channels)``: ``head(trunk(x)) == forward(x)``, the head being the last stage and the
        classifier, both sharing this model's modules; ``channels`` is the trunk output's channel count."""
        parts, channels = self.split_stages()
        return nn.Sequential(*parts[:-1]), parts[-1], channels[-1]

    @property
    def declares_stages(self) -> bool:
        return type(self).split_stages is not KDModel.split_stages

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def conv_out(size: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> int:
    """Output length of a convolution or pooling along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


class Part(nn.Module):
    """Some of a model's modules and the function that runs them: a trunk or a head sharing the model's
    weights (a deep copy of a head is a new branch). ``run(part, x)`` is a module-level function."""

    def __init__(self, run: Callable[..., torch.Tensor], **modules: nn.Module) -> None:
        super().__init__()
        self.run = run
        for name, module in modules.items():
            self.add_module(name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(self, x)
