"""Park, Kim, Lu and Cho, "Relational Knowledge Distillation", CVPR 2019.

Transfers the *structure* of a batch of pooled embeddings (RepDistiller's ``feat[-1]``) rather
than the embeddings themselves, so student and teacher may have different widths:

* distance: pairwise Euclidean distances, each divided by the mean distance over the pairs with
  a positive distance, compared with smooth-L1 (weight ``distance_weight``, 25);
* angle: for every triple (i, j, k) the cosine of the angle at i between the unit vectors towards
  j and k, compared with smooth-L1 (weight ``angle_weight``, 50).

kdrun follows the reference code (RepDistiller ``RKD.py``), which averages the smooth-L1 over
all B^2 distance and B^3 angle entries, including the degenerate ones (i == j, whose distance is
0 and whose unit vector is the zero vector). Squared distances are clamped at ``eps`` (1e-12)
before the square root. The paper sums over the distinct pairs and triples instead: a constant
factor for a fixed batch size, which the weights absorb.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdrun.engine.task import Batch, Progress
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.precision import no_autocast, widen
from kdrun.models.features import Features


def pairwise_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(B, B) Euclidean distances from the Gram matrix; squared values clamped at ``eps``, diagonal 0."""
    sq = e.pow(2).sum(dim=1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps).sqrt()
    return d * (1 - torch.eye(len(e), device=e.device, dtype=e.dtype))


def normalized_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Pairwise distances divided by their mean over the positive entries (the paper's mu)."""
    d = pairwise_distances(e, eps)
    return d / d[d > 0].mean()


def angles(e: torch.Tensor) -> torch.Tensor:
    """(B, B, B) cosines: ``out[i, j, k] = <unit(e_j - e_i), unit(e_k - e_i)>``."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2))


def rkd_distance_loss(s: torch.Tensor, t: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    with torch.no_grad():
        t_d = normalized_distances(t, eps)
    return F.smooth_l1_loss(normalized_distances(s, eps), t_d)


def rkd_angle_loss(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        t_a = angles(t)
    return F.smooth_l1_loss(angles(s), t_a)


class RKD(Method):
    """Returns ``rkd_distance`` and ``rkd_angle``, each already multiplied by its weight."""
    input_kinds = ("image", "signal", "tokens")  # on transformers: their logits and [CLS] embeddings

    needs = Needs(features=True)

    def __init__(self, ctx: MethodContext, distance_weight: float = 25.0, angle_weight: float = 50.0,
                 eps: float = 1e-12) -> None:
        super().__init__(ctx)
        self.distance_weight, self.angle_weight, self.eps = distance_weight, angle_weight, eps

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        f_s, f_t = widen(s.pooled.flatten(1)), widen(t.pooled.flatten(1))
        with no_autocast(f_s):
            return {
                "rkd_distance": self.distance_weight * rkd_distance_loss(f_s, f_t, self.eps),
                "rkd_angle": self.angle_weight * rkd_angle_loss(f_s, f_t),
            }
