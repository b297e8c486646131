"""Huang and Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer", arXiv 2017.

Each channel of an intermediate map is one sample of a distribution over spatial positions
(flattened and L2-normalized over positions); the student's distribution is matched to the
teacher's by the squared maximum mean discrepancy with the polynomial kernel k(x, y) = (x.y)^2
(d = 2, c = 0), at every stage output ``stages[1..n-1]``:

    MMD^2 = mean k(t_i, t_j) + mean k(s_i, s_j) - 2 mean k(s_i, t_j)

The larger map is average-pooled to the smaller first; channel counts may differ. This is the
paper's formula and RepDistiller's code (its full form, with the constant teacher-teacher term),
beta = 50.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdrun.engine.task import Batch, Progress
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.feature_maps import match_sizes
from kdrun.methods.pairing import require_maps, stage_pairs
from kdrun.methods.precision import in_float32
from kdrun.models.features import Features


def poly_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, Ca, N), (B, Cb, N) -> (B, Cb, Ca) of (b_j . a_i)^2."""
    return torch.bmm(b, a.transpose(1, 2)).pow(2)


@in_float32
def nst_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Squared MMD between the channel distributions of two maps, polynomial kernel of degree 2."""
    f_s, f_t = match_sizes(f_s, f_t)
    s = F.normalize(f_s.flatten(2), dim=2)
    t = F.normalize(f_t.flatten(2), dim=2)
    return poly_kernel(t, t).mean().detach() + poly_kernel(s, s).mean() - 2 * poly_kernel(s, t).mean()


class NST(Method):
    needs = Needs(features=True)

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        require_maps("nst", ctx, min_stages=2)
        self.positions = [i for i, _, _ in stage_pairs(ctx, first=1)]

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        return {"nst": sum(nst_loss(s.stages[i], t.stages[i]) for i in self.positions)}
