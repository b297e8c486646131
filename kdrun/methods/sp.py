"""Tung and Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019.

The student should make similar samples similar: for a batch of feature maps flattened to
(B, C*H*W), the B x B Gram matrix ``G = f f^T`` has its rows L2-normalized, and the loss is
``||G_t - G_s||_F^2 / B^2``. Student and teacher may differ in every dimension but the batch.

The paper sums this over several layer pairs; kdrun follows the reference code (RepDistiller
``SP.py`` with ``feat[-2]``), which uses only the last conv map (``stages[-1]``), with beta 3000.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdrun.engine.task import Batch, Progress
from kdrun.methods.base import Method, Needs
from kdrun.methods.precision import no_autocast, widen
from kdrun.models.features import Features


def similarity_matrix(f: torch.Tensor) -> torch.Tensor:
    """Row-L2-normalized Gram matrix of the flattened batch."""
    f = f.flatten(1)
    return F.normalize(f @ f.t(), p=2, dim=1)


def sp_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius distance of the two similarity matrices, divided by B^2."""
    b = f_s.shape[0]
    return (similarity_matrix(f_t) - similarity_matrix(f_s)).pow(2).sum() / (b * b)


class SP(Method):
    """Returns ``sp``: the loss on the last conv map."""
    input_kinds = ("image", "signal", "tokens")  # on transformers: their logits and [CLS] embeddings

    needs = Needs(features=True)

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        f_s, f_t = widen(s.stages[-1]), widen(t.stages[-1])
        with no_autocast(f_s):
            return {"sp": sp_loss(f_s, f_t)}
