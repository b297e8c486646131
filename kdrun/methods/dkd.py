"""Zhao, Cui, Song, Qiu and Liang, "Decoupled Knowledge Distillation", CVPR 2022.

The KD loss splits into a target-class term (TCKD: binary KL between the probabilities of
"target" and "all other classes") and a non-target term (NCKD: KL between the distributions over
the non-target classes, each renormalized without the target). DKD weighs them separately:
``tckd_weight * TCKD + nckd_weight * NCKD``, both at temperature ``T`` and scaled by T^2 like KD.

Following the reference code (mdistiller, ``DKD.py``), the DKD term is multiplied by a linear
warm-up ``min(epoch / warmup_epochs, 1)`` with 1-based epochs (0.05 at epoch 1 of 20), and the
non-target distributions are formed by subtracting 1000 from the target logit before the
softmax (the same as renormalizing over the other classes).

kdrun's weights: ``distill.gamma=1`` (CE), ``distill.alpha=0`` (no plain KD term) and
``distill.beta=1``; the paper's alpha/beta are this method's ``tckd_weight``/``nckd_weight``
(1 and 8). mdistiller sets ``nckd_weight`` per pair: 2 for resnet56->resnet20 and
resnet110->resnet32, 6 for the wrn and vgg13 pairs, 8 otherwise; the experiment presets set it,
e.g. ``method=dkd method.nckd_weight=2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.precision import no_autocast, widen
from kdrun.models.features import Features

# Subtracted from the target logit so that its softmax probability underflows to zero (mdistiller's value).
MASK_OFFSET = 1000.0


def warmup_factor(epoch: int, warmup_epochs: int) -> float:
    """Linear ramp ``min(epoch / warmup_epochs, 1)`` over 1-based epochs; no ramp when warmup_epochs is 0."""
    return 1.0 if warmup_epochs <= 0 else min(epoch / warmup_epochs, 1.0)


def tckd_loss(s_logits: torch.Tensor, t_logits: torch.Tensor, target: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 * KL(b_t || b_s) of the binary (target, non-target) probabilities, averaged over the batch."""
    gt = F.one_hot(target, s_logits.shape[1]).bool()
    p_s, p_t = F.softmax(s_logits / T, dim=1), F.softmax(t_logits / T, dim=1)
    b_s = torch.stack([p_s[gt], p_s.masked_fill(gt, 0).sum(1)], dim=1)
    b_t = torch.stack([p_t[gt], p_t.masked_fill(gt, 0).sum(1)], dim=1)
    return F.kl_div(torch.log(b_s), b_t, reduction="sum") * (T * T) / target.shape[0]


def nckd_loss(s_logits: torch.Tensor, t_logits: torch.Tensor, target: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 * KL(p_t || p_s) over the non-target classes (renormalized), averaged over the batch."""
    offset = F.one_hot(target, s_logits.shape[1]).to(s_logits.dtype) * MASK_OFFSET
    log_p_s = F.log_softmax(s_logits / T - offset, dim=1)
    p_t = F.softmax(t_logits / T - offset, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="sum") * (T * T) / target.shape[0]


class DKD(Method):
    """Logits only: returns ``tckd`` and ``nckd``, each already weighted and warmed up."""
    input_kinds = ("image", "signal", "tokens")  # on transformers: their logits

    needs = Needs()

    def __init__(self, ctx: MethodContext, tckd_weight: float = 1.0, nckd_weight: float = 8.0, T: float = 4.0,
                 warmup_epochs: int = 20) -> None:
        super().__init__(ctx)
        if T <= 0:
            raise KdrunError(f"method.T={T} must be > 0 (the DKD temperature; the reference value is 4)")
        if warmup_epochs < 0:
            raise KdrunError(f"method.warmup_epochs={warmup_epochs} must be >= 0 (0 = no warm-up; reference 20)")
        self.tckd_weight, self.nckd_weight = tckd_weight, nckd_weight
        self.T, self.warmup_epochs = T, warmup_epochs

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        ramp = warmup_factor(progress.epoch, self.warmup_epochs)
        s_logits, t_logits = widen(s.logits), widen(t.logits)  # the log of the 2-way split needs >= fp32
        with no_autocast(s_logits):
            return {
                "tckd": ramp * self.tckd_weight * tckd_loss(s_logits, t_logits, batch.y, self.T),
                "nckd": ramp * self.nckd_weight * nckd_loss(s_logits, t_logits, batch.y, self.T),
            }
