"""Ahn, Hu, Damianou, Lawrence and Dai, "Variational Information Distillation for Knowledge
Transfer", CVPR 2019.

VID maximizes a variational lower bound on the mutual information between teacher and student
features: the teacher's map t at each stage output ``stages[1..n-1]`` is modelled as a Gaussian
with mean mu = r(s) (a regressor of three 1x1 convolutions without bias, ReLU between, on the
student's map) and a learned per-channel variance sigma^2 = softplus(log_scale) + eps (initial
variance 5.0, eps 1e-5). The loss is the negative log-likelihood without its constant,

    mean over batch, channels and positions of 0.5 * ((mu - t)^2 / sigma^2 + log sigma^2),

summed over stages; the larger map is average-pooled to the smaller before the regressor.
Regressors and variances train with the student (beta = 1), as in the authors' code and RepDistiller.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.engine.task import Batch, Progress
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.feature_maps import conv, match_sizes
from kdrun.methods.pairing import require_maps, stage_pairs
from kdrun.models.features import Features


def vid_nll(mean: torch.Tensor, target: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood without the constant, averaged; ``variance`` is (C,) per channel."""
    var = variance.view(1, -1, *([1] * (target.dim() - 2)))
    return (0.5 * ((mean - target).pow(2) / var + var.log())).mean()


def regressor(dims: int, s_c: int, mid: int, t_c: int) -> nn.Sequential:
    return nn.Sequential(conv(dims, s_c, mid, 1, bias=False), nn.ReLU(),
                         conv(dims, mid, mid, 1, bias=False), nn.ReLU(),
                         conv(dims, mid, t_c, 1, bias=False))


class VID(Method):
    needs = Needs(features=True)

    def __init__(self, ctx: MethodContext, init_var: float = 5.0, eps: float = 1e-5) -> None:
        super().__init__(ctx)
        require_maps("vid", ctx, min_stages=2)
        pairs = stage_pairs(ctx, first=1)
        self.positions = [i for i, _, _ in pairs]
        self.eps = eps
        # The reference sizes the hidden width to the teacher's channels: VIDLoss(s_C, t_C, t_C).
        self.regressors = nn.ModuleList(regressor(len(s) - 1, s[0], t[0], t[0]) for _, s, t in pairs)
        start = math.log(math.expm1(init_var - eps))  # softplus^-1(init_var - eps)
        self.log_scales = nn.ParameterList(nn.Parameter(torch.full((t[0],), start)) for _, _, t in pairs)

    def variance(self, k: int) -> torch.Tensor:
        return F.softplus(self.log_scales[k]) + self.eps

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        losses = []
        for k, i in enumerate(self.positions):
            f_s, f_t = match_sizes(s.stages[i], t.stages[i])
            losses.append(vid_nll(self.regressors[k](f_s), f_t, self.variance(k)))
        return {"vid": sum(losses)}
