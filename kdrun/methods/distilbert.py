"""Sanh, Debut, Chaumond and Wolf, "DistilBERT, a distilled version of BERT: smaller, faster, cheaper and
lighter", NeurIPS EMC^2 Workshop 2019.

The loss of the reference code (huggingface/transformers-research-projects, ``distillation/distiller.py``):

    L = alpha_ce * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))   kdrun's KD term: distill.alpha, distill.T
      + alpha_mlm * CE(z_s, y)                                       the hard term: distill.gamma
      + alpha_cos * mean_tokens (1 - cos(h_s, h_t))                   this method's ``cos`` term: distill.beta

with the README's BERT weights T = 2, alpha_ce 5, alpha_mlm 2, alpha_cos 1 (conf/method/distilbert.yaml).
The cosine term compares the last hidden states of the non-padding tokens (``torch.masked_select`` over the
attention mask, then ``CosineEmbeddingLoss`` with target 1: the mean of 1 - cos), so the student must have
the teacher's hidden size, as DistilBERT has. The KL term is ``batchmean`` over the rows it is computed on:
the reference pre-trains with MLM, one row per token (every non-padding token, or the masked ones with
``restrict_ce_to_mask``); on a classification task kdrun has one row per sequence, and the hard term is the
label cross-entropy where the reference has the MLM loss. The paper writes L_ce as a cross-entropy with soft
targets; the code's KL has the same gradient (up to the T^2 factor).

DistilBERT's student initialisation (``scripts/extract_distilbert.py``: every other teacher layer) is a model
option, ``student.init_from_teacher`` (kdrun/models/text_init.py), usable with any method.
"""

from __future__ import annotations

import torch

from kdrun.engine.task import Batch, Progress
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.precision import in_float32
from kdrun.methods.transformer import require_equal
from kdrun.models.features import Features


@in_float32
def hidden_cosine_loss(h_s: torch.Tensor, h_t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the non-padding tokens of 1 - cos(h_s, h_t); ``h`` (B, L, H), ``mask`` (B, L)."""
    keep = mask.bool()
    s, t = h_s[keep], h_t[keep]  # (tokens, H): masked_select(...).view(-1, dim) in the reference
    return (1.0 - torch.nn.functional.cosine_similarity(s, t, dim=-1, eps=1e-8)).mean()


class DistilBERT(Method):
    """Returns ``cos``: last-layer hidden-state cosine alignment (the soft and hard terms come from distill.*)."""

    needs = Needs(features=True)
    input_kinds = ("tokens",)

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        require_equal("distilbert", ctx, "hidden", "hidden")

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        return {"cos": hidden_cosine_loss(s.hidden[-1], t.hidden[-1], s.mask)}
