"""Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", NIPS Deep Learning Workshop 2015.

The KD term itself lives here as :func:`kd_loss` and is applied by the distillation task to
every method through ``distill.alpha``; the ``kd`` method adds no term of its own, so
``method=kd`` is pure Hinton distillation: gamma * CE + alpha * T^2 * KL(teacher_T || student_T).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdrun.methods.base import Method
from kdrun.methods.precision import in_float32


@in_float32
def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), summed over classes and averaged over the batch.

    The T^2 factor keeps the gradient scale of the soft term independent of T (Hinton et al., sec. 2).
    """
    log_p_s = F.log_softmax(student_logits / T, dim=1)
    log_p_t = F.log_softmax(teacher_logits / T, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (T * T)


class KD(Method):
    """Soft targets only: the KD term is added by the task with weight ``distill.alpha``."""
    input_kinds = ("image", "signal", "tokens")  # on transformers: their logits
