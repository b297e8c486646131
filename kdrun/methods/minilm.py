"""Wang, Wei, Dong, Bao, Yang and Zhou, "MiniLM: Deep Self-Attention Distillation for Task-Agnostic
Compression of Pre-Trained Transformers", NeurIPS 2020; and Wang, Bao, Huang, Dong and Wei, "MiniLMv2:
Multi-Head Self-Attention Relation Distillation for Compressing Pretrained Transformers", Findings of ACL 2021.

No official distillation code is published (microsoft/unilm's ``minilm/`` holds a README and fine-tuning
code): these are the papers' formulas, with the normalisation of the third-party implementations
(bloomberg/minilmv2.bb, PaddleNLP's ``model_compression/minilmv2``): for each relation, the KL divergence of
every valid query row (teacher softmax against student log-softmax, padded keys left out) is summed over
the sequence and the heads and divided by heads x non-padding length, then averaged over the batch.

- v1 (``relation_heads: null``, the default): the last student layer against the last teacher layer;
  ``attention`` = KL(A_t || A_s) with A = softmax(QK^T / sqrt(d_head)) per attention head, and ``value`` =
  the same with softmax(VV^T / sqrt(d_head)). Equal head counts are required (hidden sizes may differ).
- v2 (``relation_heads: A_r``): each model's queries, keys and values are concatenated over its heads and
  re-split into A_r relation heads of size hidden / A_r; R = softmax(X X^T / sqrt(d_r)); the terms ``qq``,
  ``kk`` and ``vv`` (weights 1). Any head counts; both hidden sizes must divide by A_r. The paper uses
  A_r = 48 for base teachers and 64 for large ones, and an upper-middle teacher layer for large teachers
  (``teacher_layer``: BERT-large 21, RoBERTa-large 19; 0-based here: 20, 18).

MiniLM distils task-agnostically (pre-training); on a labelled task kdrun adds the label CE (gamma 1) and no
KD term (alpha 0): conf/method/minilm.yaml.
"""

from __future__ import annotations

import torch

from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.precision import in_float32
from kdrun.methods.transformer import check_layer, require_equal
from kdrun.models.features import Features

MASKED = -1e4  # a finite stand-in for -inf at padded keys: exp() is exactly 0, and no inf - inf reaches a gradient


def relation_logits(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """a b^T / sqrt(d) per head, padded keys set to MASKED; a, b (B, heads, L, d), mask (B, L)."""
    scores = a @ b.transpose(-1, -2) / a.shape[-1] ** 0.5
    return scores.masked_fill(~mask.bool()[:, None, None, :], MASKED)


@in_float32
def relation_kl(t_logits: torch.Tensor, s_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(softmax(t) || softmax(s)) per valid query row, summed, / (heads x valid length), batch mean."""
    log_t, log_s = t_logits.log_softmax(-1), s_logits.log_softmax(-1)
    keys = mask.bool()[:, None, None, :]
    kl = torch.where(keys, log_t.exp() * (log_t - log_s), torch.zeros_like(log_t)).sum(-1)  # (B, heads, L)
    queries = mask.to(kl.dtype)[:, None, :]
    per_sequence = (kl * queries).sum((1, 2)) / (kl.shape[1] * mask.to(kl.dtype).sum(1))
    return per_sequence.mean()


def relation_heads_split(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, h, L, d) attention heads -> (B, heads, L, h*d / heads): concatenated, then re-split (MiniLMv2)."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, heads, h * d // heads).transpose(1, 2)


class MiniLM(Method):
    """v1: ``attention`` and ``value``; v2 (relation_heads set): ``qq``, ``kk``, ``vv``."""

    needs = Needs(features=True)
    input_kinds = ("tokens",)

    def __init__(self, ctx: MethodContext, relation_heads: int | None = None, teacher_layer: int = -1,
                 student_layer: int = -1) -> None:
        super().__init__(ctx)
        self.teacher_layer = check_layer("minilm", teacher_layer, ctx.teacher.layers, "method.teacher_layer")
        self.student_layer = check_layer("minilm", student_layer, ctx.student.layers, "method.student_layer")
        if relation_heads is None:
            require_equal("minilm", ctx, "heads", "heads")
        else:
            bad = [f"{role} hidden {d}" for role, d in (("student", ctx.student.pooled_dim),
                                                        ("teacher", ctx.teacher.pooled_dim)) if d % relation_heads]
            if relation_heads < 1 or bad:
                raise KdrunError(f"method.relation_heads={relation_heads} must divide both hidden sizes "
                                 f"({', '.join(bad) or 'must be >= 1'}); e.g. method.relation_heads=null (MiniLM v1)")
        self.relation_heads = relation_heads

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        (qs, ks, vs), (qt, kt, vt) = s.qkv[self.student_layer], t.qkv[self.teacher_layer]
        mask = s.mask
        if self.relation_heads is None:
            return {"attention": relation_kl(relation_logits(qt, kt, mask), relation_logits(qs, ks, mask), mask),
                    "value": relation_kl(relation_logits(vt, vt, mask), relation_logits(vs, vs, mask), mask)}
        terms = {}
        for name, xs, xt in (("qq", qs, qt), ("kk", ks, kt), ("vv", vs, vt)):
            xs, xt = relation_heads_split(xs, self.relation_heads), relation_heads_split(xt, self.relation_heads)
            terms[name] = relation_kl(relation_logits(xt, xt, mask), relation_logits(xs, xs, mask), mask)
        return terms
