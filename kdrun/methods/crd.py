"""Tian, Krishnan and Isola, "Contrastive Representation Distillation", ICLR 2020.

Maximizes a lower bound on the mutual information between teacher and student representations
with a noise-contrastive objective: the pooled embeddings of both models are mapped by trained
linear embeddings to ``feat_dim`` (128) and L2-normalized; for each sample the positive pair is
(its embedding, the other model's memory-bank entry for the same sample) and the negatives are
``nce_k`` (16384) memory-bank entries of samples of other classes. Scores are
``exp(v . m / nce_t) / Z`` (temperature 0.07) with Z fixed from the first batch, and the NCE loss
(paper eq. 18, noise distribution 1/N) is applied symmetrically: student embedding against the
teacher bank (``crd_s``) and teacher embedding against the student bank (``crd_t``). Both banks
(``N x 128``) are updated with momentum 0.5 after every step, outside autograd.

kdrun follows the reference code (RepDistiller ``crd/``) with ``mode='exact'`` (the positive is
the sample itself; negatives drawn from the other classes, without replacement). What differs:

* Datasets smaller than the reference's: without replacement, the number of negatives is capped
  at what every class has available, ``min(nce_k, n_train - largest class size)`` (3,589 on the
  embedded MNIST-1D), so each batch row has the same number. The reference would instead switch
  to drawing with replacement; ``method.replacement=true`` does that (and is the cheaper choice
  for very large training sets, as in the reference's ImageNet loader).
* Sampling happens in the method, on the training device, from ``train_targets``; the data
  loader only supplies each sample's dataset index (``needs.sample_index``).

CRD+KD (the CRD paper's best numbers) is ``method=crd distill.alpha=1``.
"""

from __future__ import annotations

import logging

import torch

from kdrun.distributed import all_gather_rows
from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.crd_memory import ContrastMemory, OtherClassSampler
from kdrun.methods.embed import LinearEmbed
from kdrun.methods.precision import no_autocast, widen
from kdrun.models.features import Features

log = logging.getLogger("kdrun")


def nce_loss(scores: torch.Tensor, n_data: int, eps: float = 1e-7) -> torch.Tensor:
    """Eq. 18: -(log h(positive) + sum log(1 - h(negative))) per sample, averaged over the batch,
    with ``h(x) = x / (x + K / n_data)``; column 0 of ``scores`` is the positive."""
    noise = (scores.shape[1] - 1) / n_data
    pos, neg = scores[:, 0], scores[:, 1:]
    log_d1 = torch.log(pos / (pos + noise + eps))
    log_d0 = torch.log(noise / (neg + noise + eps))
    return -(log_d1.sum() + log_d0.sum()) / scores.shape[0]


def negatives_available(targets: torch.Tensor) -> int:
    """Negatives every sample can draw without replacement: n_train minus the largest class."""
    return len(targets) - int(torch.bincount(targets.long()).max())


class CRD(Method):
    """Returns ``crd_s`` and ``crd_t``; embeddings train with the student, banks are buffers."""

    needs = Needs(features=True, sample_index=True)

    def __init__(self, ctx: MethodContext, feat_dim: int = 128, nce_k: int = 16384, nce_t: float = 0.07,
                 momentum: float = 0.5, replacement: bool = False) -> None:
        super().__init__(ctx)
        available = negatives_available(ctx.train_targets)
        if available < 1:
            raise KdrunError(f"method=crd draws negatives from other classes, but dataset {ctx.data.name} has "
                             f"a single class in its training set; use a dataset with at least two classes")
        if nce_k < 1 or nce_t <= 0 or not 0 <= momentum < 1:
            raise KdrunError(f"method.nce_k={nce_k}, method.nce_t={nce_t}, method.momentum={momentum}: need "
                             f"nce_k >= 1, nce_t > 0, 0 <= momentum < 1 (reference: 16384, 0.07, 0.5)")
        self.num_negatives = nce_k if replacement else min(nce_k, available)
        self.n_data = len(ctx.train_targets)
        self.embed_s = LinearEmbed(ctx.student.pooled_dim, feat_dim, normalize=True)
        self.embed_t = LinearEmbed(ctx.teacher.pooled_dim, feat_dim, normalize=True)
        self.sampler = OtherClassSampler(ctx.train_targets, self.num_negatives, replacement)
        self.memory = ContrastMemory(self.n_data, feat_dim, nce_t, momentum)
        log.info("crd: %d negatives per sample from other classes (%s replacement; nce_k=%d), memory banks %d x %d",
                 self.num_negatives, "with" if replacement else "without", nce_k, self.n_data, feat_dim)

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        if batch.index is None:
            raise RuntimeError("CRD needs dataset indices: the stage must be built with needs_index=True")
        index = batch.index.long()
        with no_autocast(s.pooled):
            v_s, v_t = self.embed_s(widen(s.pooled)), self.embed_t(widen(t.pooled))
            contrast = torch.cat([index.unsqueeze(1), self.sampler(index)], dim=1)
            out_s, out_t = self.memory.scores(v_s, v_t, contrast)
            terms = {"crd_s": nce_loss(out_s, self.n_data), "crd_t": nce_loss(out_t, self.n_data)}
        # data-parallel: every rank applies the whole global batch, so the banks stay identical
        self.memory.update(*all_gather_rows(index, v_s, v_t))
        return terms
