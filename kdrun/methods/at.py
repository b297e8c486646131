"""Zagoruyko and Komodakis, "Paying More Attention to Attention: Improving the Performance of
Convolutional Neural Networks via Attention Transfer", ICLR 2017.

Activation-based attention transfer: each intermediate map becomes a spatial attention map,
Q = mean over channels of f^p (p = 2), flattened and L2-normalized; the student's maps are pulled
to the teacher's at every stage output ``stages[1..n-1]`` (RepDistiller's ``feat[1:-1]``). Where the
two maps differ in size, the larger *feature map* is average-pooled to the smaller before Q.

Paper vs reference code. The paper writes beta/2 * || Q_s/|Q_s| - Q_t/|Q_t| ||_2 (a norm) with
Q summed over channels; the authors' code and RepDistiller use the channel mean (the same after
normalization) and the *squared* difference averaged over batch and positions, with beta = 1000.
kdrun follows the code, whose weight the published tables use.
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


def attention_map(f: torch.Tensor, p: float) -> torch.Tensor:
    """(B, C, *spatial) -> (B, positions): channel mean of f^p, flattened, L2-normalized per sample."""
    return F.normalize(f.pow(p).mean(1).flatten(1), dim=1)


@in_float32
def at_loss(f_s: torch.Tensor, f_t: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Mean squared difference of the two attention maps (larger map pooled to the smaller first)."""
    f_s, f_t = match_sizes(f_s, f_t)
    return (attention_map(f_s, p) - attention_map(f_t, p)).pow(2).mean()


class AT(Method):
    needs = Needs(features=True)

    def __init__(self, ctx: MethodContext, p: float = 2.0) -> None:
        super().__init__(ctx)
        require_maps("at", ctx, min_stages=2)
        self.p = p
        self.positions = [i for i, _, _ in stage_pairs(ctx, first=1)]

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        return {"at": sum(at_loss(s.stages[i], t.stages[i], self.p) for i in self.positions)}
