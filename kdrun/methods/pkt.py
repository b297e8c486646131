"""Passalis and Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer", ECCV 2018.

Matches the conditional probability distributions that each model's embedding space induces on
a batch: cosine similarities of the L2-normalized pooled embeddings are mapped to [0, 1] by
``(cos + 1) / 2`` and each row is normalized to sum to one; the loss is the KL divergence
``t * log((t + eps) / (s + eps))`` between teacher and student rows (eps 1e-7, also added to the
norms). Works for any embedding widths.

kdrun follows the reference code (RepDistiller ``PKT.py``, from the authors' code): the *mean*
of the B^2 entries, with beta 30000. The paper writes the sum; ``beta * mean`` equals
``(beta / B^2) * sum`` for a fixed batch size, so the weight alone converts between the two.
"""

from __future__ import annotations

import torch

from kdrun.engine.task import Batch, Progress
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.precision import no_autocast, widen
from kdrun.models.features import Features


def conditional_probabilities(f: torch.Tensor, eps: float) -> torch.Tensor:
    """Rows of (cos + 1) / 2 over the batch, normalized to sum to one."""
    f = f.flatten(1)
    f = f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
    f = torch.nan_to_num(f, nan=0.0)  # the reference zeroes NaNs from non-finite inputs the same way
    sim = (f @ f.t() + 1.0) / 2.0
    return sim / sim.sum(dim=1, keepdim=True)


def pkt_loss(f_s: torch.Tensor, f_t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    p_s, p_t = conditional_probabilities(f_s, eps), conditional_probabilities(f_t, eps)
    return torch.mean(p_t * torch.log((p_t + eps) / (p_s + eps)))


class PKT(Method):
    """Returns ``pkt`` on the pooled embeddings."""
    input_kinds = ("image", "signal", "tokens")  # on transformers: their logits and [CLS] embeddings

    needs = Needs(features=True)

    def __init__(self, ctx: MethodContext, eps: float = 1e-7) -> None:
        super().__init__(ctx)
        self.eps = eps

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        f_s, f_t = widen(s.pooled), widen(t.pooled)
        with no_autocast(f_s):
            return {"pkt": pkt_loss(f_s, f_t, self.eps)}
