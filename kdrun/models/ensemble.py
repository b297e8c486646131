"""Several trained models as one teacher: their softmax averaged at a temperature."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EnsembleModel(nn.Module):
    """Averages its members' softmax at temperature ``T``; returns ``T * log(mean_i softmax(z_i / T))``.

    Those logits make ``softmax(logits / T)`` exactly the averaged soft targets, so an ensemble is a
    teacher for any method that uses logits (the KD term divides by the same ``T``). Used by
    scheme=ensemble (an ensemble of teachers) and scheme=born_again (the ensemble of generations).
    """

    def __init__(self, members: list[nn.Module], T: float = 1.0) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.T = T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([F.log_softmax(m(x) / self.T, dim=1) for m in self.members])
        return self.T * (torch.logsumexp(log_probs, dim=0) - math.log(len(self.members)))

    def forward_features(self, x: torch.Tensor, preact: bool = False):
        raise TypeError("an ensemble of models has no single set of features; use a method that needs only "
                        "logits (e.g. method=kd)")
