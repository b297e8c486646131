"""Agarwal et al., "On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes" (GKD),
ICLR 2024: token-level distillation of causal LMs with the generalized Jensen-Shannon divergence.

The loss follows TRL's ``GKDTrainer.generalized_jsd_loss`` (huggingface/trl, ``trl/experimental/gkd/
gkd_trainer.py``), per next-token position, over the vocabulary:

    p_S = softmax(z_s / T), p_T = softmax(z_t / T)
    beta = 0:  KL(p_T || p_S)                                  forward KL (token-level KD, "supervised KD")
    beta = 1:  KL(p_S || p_T)                                  reverse KL
    else:      beta KL(p_T || M) + (1 - beta) KL(p_S || M),    M = beta p_T + (1 - beta) p_S (mixed in probability
                                                               space, as logsumexp of the log-probabilities)

summed over the vocabulary and the positions whose target is not -100 (padding, past the end), divided by
the number of those positions (TRL's ``batchmean`` with labels). beta 0 and 1 are exact cases, as in TRL: the
mixture formula tends to 0 there. TRL's defaults: beta 0.5, temperature 1 in the loss (its 0.9 is for
sampling). No T^2 factor. TRL's on-policy part (``lmbda``: a share of steps on student-generated
completions) is not done here: kdrun distils on the corpus's own sequences (GKD's supervised setting).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.base import Method, MethodContext
from kdrun.methods.precision import in_float32
from kdrun.models.features import Features

IGNORE = -100


@in_float32
def generalized_jsd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None,
                         beta: float = 0.5, temperature: float = 1.0) -> torch.Tensor:
    """Logits (B, V, L) (kdrun's causal-LM layout: the vocabulary on dimension 1) or (N, V); ``labels`` (B, L)
    with -100 where a position is ignored. Returns the mean over the kept positions."""
    log_s = F.log_softmax(student_logits / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits / temperature, dim=1)
    if beta == 0:
        per = F.kl_div(log_s, log_t, reduction="none", log_target=True)  # KL(p_T || p_S)
    elif beta == 1:
        per = F.kl_div(log_t, log_s, reduction="none", log_target=True)  # KL(p_S || p_T)
    else:
        mixture = torch.logsumexp(torch.stack([log_s + math.log(1 - beta), log_t + math.log(beta)]), dim=0)
        per = (beta * F.kl_div(mixture, log_t, reduction="none", log_target=True)
               + (1 - beta) * F.kl_div(mixture, log_s, reduction="none", log_target=True))
    per_position = per.sum(1)  # over the vocabulary
    if labels is None:
        return per_position.mean()
    keep = labels != IGNORE
    return per_position[keep].sum() / keep.sum().clamp(min=1)


def token_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                  T: float) -> torch.Tensor:
    """Hinton's KD term per next-token position: T^2 * KL(p_T || p_S) at T, averaged over the kept positions."""
    return generalized_jsd_loss(student_logits, teacher_logits, labels, 0.0, T) * (T * T)


class GKD(Method):
    """Returns ``jsd``: the generalized JSD at ``beta`` over the non-ignored next-token positions."""

    input_kinds = ("next_tokens",)

    def __init__(self, ctx: MethodContext, beta: float = 0.5, temperature: float = 1.0) -> None:
        super().__init__(ctx)
        if not 0.0 <= float(beta) <= 1.0:
            raise KdrunError(f"method.beta={beta} is outside 0..1 (0: forward KL, 1: reverse KL, between: "
                             "generalized JSD)")
        if not float(temperature) > 0:
            raise KdrunError(f"method.temperature={temperature} must be positive (TRL's default: 1.0)")
        self.beta, self.temperature = float(beta), float(temperature)

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        return {"jsd": generalized_jsd_loss(s.logits, t.logits, batch.y, self.beta, self.temperature)}
