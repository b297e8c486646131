"""Selective distillation: the distillation terms on the difficult samples of each batch only.

Wang, Yan, Meng and Zhou, "Selective Knowledge Distillation for Neural Machine Translation", ACL 2021
(batch-level selection): every sample gets cross-entropy; only the fraction r of each batch on which the
student's cross-entropy is highest also gets the distillation term (r = 0.5 in the paper). As there, the
selected samples' terms are divided by the whole batch size (fairseq normalizes by every token), so a
smaller selection distils less, not harder: term = sum over selected / B.

kdrun offers that criterion and two that rank by the teacher instead:

* ``student_ce``: the student's CE on the label (the paper's); highest first. ``threshold``: CE above it.
* ``teacher_confidence``: the teacher's top softmax probability (T = 1); least confident first, as the
  samples whose soft targets carry the most information beyond the label. ``threshold``: confidence below it.
* ``teacher_correct``: the samples the teacher classifies correctly (the teacher's errors are not
  distilled; the "data selection" of Lan et al., IEEE TCDS 2024, in its simplest form). A filter: no
  fraction or threshold.

Differences from the paper: samples rather than target words; no global-level selection (its queue of
past CE values); the optional warm-up distils on every sample for the first ``warmup_epochs`` epochs,
while the student's CE still says little. Only logit terms are selected (KD and logit-only methods such
as DKD, whose terms are batch means): a feature method's terms mix samples (relations, contrastive
negatives, batch statistics), so it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdrun.errors import KdrunError
from kdrun.models.features import Features
from kdrun.engine.task import Batch, Progress

@dataclass(frozen=True)
class SampleSelection:
    """``distill.select``: which samples of each batch the distillation terms use (see the module doc)."""

    by: str
    fraction: float | None = None
    threshold: float | None = None
    warmup_epochs: int = 0

    def active(self, progress: Progress) -> bool:
        """False during the warm-up (1-based epochs 1..warmup_epochs): every sample is distilled."""
        return progress.epoch > self.warmup_epochs

    @torch.no_grad()
    def mask(self, s_logits: torch.Tensor, t_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Boolean mask over the batch: True = distil this sample."""
        if self.by == "teacher_correct":
            return t_logits.argmax(1) == y
        if self.by == "student_ce":
            difficulty = F.cross_entropy(s_logits.float(), y, reduction="none")
        else:  # the less confident the teacher, the more difficult
            difficulty = -F.softmax(t_logits.float(), dim=1).amax(1)
        if self.threshold is not None:
            limit = self.threshold if self.by == "student_ce" else -self.threshold
            return difficulty > limit
        k = min(len(y), max(1, round(self.fraction * len(y))))
        chosen = torch.zeros_like(difficulty, dtype=torch.bool)
        chosen[difficulty.topk(k).indices] = True
        return chosen


def subset(s: Features, t: Features, batch: Batch, mask: torch.Tensor) -> tuple[Features, Features, Batch]:
    """The selected samples' logits (logit-only terms need nothing else) and batch."""
    pick = lambda v: None if v is None else v[mask]  # noqa: E731
    return (Features(logits=s.logits[mask]), Features(logits=t.logits[mask]),
            Batch(batch.x[mask], batch.y[mask], pick(batch.index), pick(batch.transfer_x)))


def selection_from(node: dict | None) -> SampleSelection | None:
    """``distill.select`` (checked by ``config_checks``) as a :class:`SampleSelection`; None when ``by`` is null."""
    if not node or node.get("by") is None:
        return None
    return SampleSelection(node["by"], node.get("fraction"), node.get("threshold"), int(node.get("warmup_epochs") or 0))


def refuse_features(method_name: str, uses_features: bool) -> None:
    """Selection applies to logit terms only; a feature method's terms are refused in one line."""
    if uses_features:
        raise KdrunError(f"distill.select works with logit methods only (kd, dkd); method={method_name} uses "
                         f"features, whose terms mix the samples of a batch: set distill.select.by=null or "
                         f"use method=kd or method=dkd")
