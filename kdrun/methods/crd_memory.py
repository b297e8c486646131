"""CRD's state over the training set: negatives from other classes, and the two memory banks.

Kept apart from the loss (``crd.py``) because it is the part with state: everything here is a
buffer of the method, so it moves with ``.to(device)`` and the banks and normalizing constants
are saved in every checkpoint, which makes a resumed run continue exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.distributed import all_reduce_mean


class OtherClassSampler(nn.Module):
    """Draws, for each sample, ``k`` dataset indices of samples of *other* classes.

    Without replacement (RepDistiller's CIFAR loader, ``mode='exact'``): uniform random scores
    over the training set, the sample's own class masked out, the top ``k`` kept. With
    replacement (RepDistiller's ImageNet loader; cheaper for very large training sets): uniform
    positions in the class-sorted index list with the own class skipped. Randomness comes from
    torch's generator of the buffers' device, which the engine reseeds every epoch.
    """

    def __init__(self, targets: torch.Tensor, k: int, replacement: bool) -> None:
        super().__init__()
        targets = targets.long()
        counts = torch.bincount(targets)
        self.k, self.replacement = k, replacement
        self.register_buffer("targets", targets, persistent=False)
        self.register_buffer("by_class", torch.argsort(targets, stable=True), persistent=False)
        self.register_buffer("class_counts", counts, persistent=False)
        self.register_buffer("class_starts", torch.cumsum(counts, 0) - counts, persistent=False)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        """(B, k) negative indices for the samples at dataset positions ``index``."""
        classes = self.targets[index]
        if self.replacement:
            counts, starts = self.class_counts[classes, None], self.class_starts[classes, None]
            pool = len(self.targets) - counts
            pos = (torch.rand(len(index), self.k, device=index.device) * pool).long().clamp_(max=pool - 1)
            return self.by_class[pos + (pos >= starts) * counts]
        scores = torch.rand(len(index), len(self.targets), device=index.device)
        scores.masked_fill_(self.targets.unsqueeze(0) == classes.unsqueeze(1), -1.0)
        return scores.topk(self.k, dim=1, sorted=False).indices


def bank_scores(bank: torch.Tensor, v: torch.Tensor, contrast: torch.Tensor) -> torch.Tensor:
    """``out[b, k] = bank[contrast[b, k]] . v[b]``.

    Computed as one (N x D) @ (D x B) product and a gather, not by gathering B x (1+K) bank rows as
    the reference does: with K = 16384 that gather copies 0.5 GB per bank and step on CIFAR, the
    product's N x B result is 13 MB. Same values, up to summation order. The product keeps a copy
    of the bank for its backward pass, since the bank is updated in place before that runs.
    """
    return (bank.clone() @ v.t()).gather(0, contrast.t()).t()


class ContrastMemory(nn.Module):
    """One memory bank per side (``n_data x feat_dim``) and the fixed normalizing constants Z.

    The banks start uniform in +-1/sqrt(feat_dim/3) (as in the reference) and are updated after
    every step with the batch's embeddings: ``m * old + (1 - m) * new``, renormalized to unit length.
    """

    def __init__(self, n_data: int, feat_dim: int, temperature: float, momentum: float) -> None:
        super().__init__()
        self.temperature, self.momentum = temperature, momentum
        stdv = 1.0 / math.sqrt(feat_dim / 3)
        self.register_buffer("memory_s", torch.rand(n_data, feat_dim).mul_(2 * stdv).add_(-stdv))
        self.register_buffer("memory_t", torch.rand(n_data, feat_dim).mul_(2 * stdv).add_(-stdv))
        # Z for the student-anchored and teacher-anchored scores; -1 = not yet fixed.
        self.register_buffer("normalizer", torch.full((2,), -1.0))

    def scores(self, v_s: torch.Tensor, v_t: torch.Tensor, contrast: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1+K) normalized scores ``exp(v . m / T) / Z``; column 0 is the positive.

        The student embedding is scored against the *teacher* bank and vice versa.
        """
        n_data = self.memory_s.shape[0]
        out_s = torch.exp(bank_scores(self.memory_t, v_s, contrast) / self.temperature)
        out_t = torch.exp(bank_scores(self.memory_s, v_t, contrast) / self.temperature)
        if self.normalizer[0] < 0:  # fixed from the first batch (Monte-Carlo estimate of the partition sum)
            # data-parallel: the mean over the ranks' shards, the same constant on every rank
            self.normalizer.copy_(all_reduce_mean(torch.stack([out_s.detach().mean(), out_t.detach().mean()])) * n_data)
        return out_s / self.normalizer[0], out_t / self.normalizer[1]

    @torch.no_grad()
    def update(self, index: torch.Tensor, v_s: torch.Tensor, v_t: torch.Tensor) -> None:
        """Momentum update of the rows of this batch's samples; outside autograd."""
        for bank, v in ((self.memory_s, v_s), (self.memory_t, v_t)):
            mixed = bank[index] * self.momentum + v.detach() * (1 - self.momentum)
            bank.index_copy_(0, index, F.normalize(mixed, p=2, dim=1))
