"""Jiao, Yin, Shang, Jiang, Chen, Li, Wang and Liu, "TinyBERT: Distilling BERT for Natural Language
Understanding", Findings of EMNLP 2020.

Two steps, as the reference's task distillation (huawei-noah/Pretrained-Language-Model, ``TinyBERT/
task_distill.py``) runs them; kdrun runs the first as this method's init stage, the second as the
distilled stage:

1. intermediate-layer distillation (``intermediate_epochs``, constant lr): ``att + hidden``, unweighted;
   - ``att``: for student layer m (1-based) and teacher layer k*m (k = N_teacher / M_student), the MSE
     between the pre-softmax attention scores QK^T / sqrt(d_head) with the additive -10000 padding mask,
     after every entry <= -100 (in either model) is set to 0; mean over batch x heads x L x L, summed over
     the M layers. Padded query rows are kept, as in the code. Equal head counts are required.
   - ``hidden``: the MSE between W h_s and h_t over the M + 1 mapped states (the embeddings, index 0,
     with the teacher's embeddings; student state m with teacher state k*m), every token, padding too;
     one shared ``fit_dense`` Linear(hidden_s -> hidden_t) applied to the student. The paper has separate
     W_e and W_h and per-layer weights lambda; the code shares W and weighs every layer 1 (kdrun follows it).
2. prediction-layer distillation (trainer.epochs): ``pred`` = soft cross-entropy
   -softmax(z_t / T) . log_softmax(z_s / T), averaged over the batch *and the classes* (the reference's
   ``.mean()``, so 1/num_classes of the usual sum), no T^2, T = 1; no hard label term (gamma 0, alpha 0).

The reference classifier reads relu(pooled output); kdrun's students keep transformers' own classifier.
The paper's results also use data augmentation (``--aug_train``), which kdrun does not do.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.precision import in_float32
from kdrun.methods.transformer import require_equal, uniform_layer_map
from kdrun.models.features import Features


def attention_scores(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """QK^T / sqrt(d) + (1 - mask) * -10000, as BERT computes them before the softmax; (B, heads, L, L)."""
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    return scores + (1.0 - mask[:, None, None, :].to(scores.dtype)) * -10000.0


@in_float32
def attention_mse(s_scores: torch.Tensor, t_scores: torch.Tensor) -> torch.Tensor:
    """MSE of the scores after entries <= -100 (masked positions) are set to 0 in each model."""
    s = torch.where(s_scores <= -1e2, torch.zeros_like(s_scores), s_scores)
    t = torch.where(t_scores <= -1e2, torch.zeros_like(t_scores), t_scores)
    return F.mse_loss(s, t)


@in_float32
def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """-softmax(z_t / T) . log_softmax(z_s / T), mean over batch and classes (the reference's ``.mean()``)."""
    return (-F.softmax(teacher_logits / T, dim=-1) * F.log_softmax(student_logits / T, dim=-1)).mean()


class TinyBERT(Method):
    """Init stage: ``att``, ``hidden``; distilled stage: ``pred``."""

    needs = Needs(features=True)
    input_kinds = ("tokens",)

    def __init__(self, ctx: MethodContext, intermediate_epochs: int = 10, intermediate_lr: float | None = None,
                 temperature: float = 1.0) -> None:
        super().__init__(ctx)
        require_equal("tinybert", ctx, "heads", "heads")
        self.k = uniform_layer_map("tinybert", ctx)
        if intermediate_epochs < 0:
            raise KdrunError(f"method.intermediate_epochs={intermediate_epochs} must be >= 0 (0: prediction step only)")
        if temperature <= 0:
            raise KdrunError(f"method.temperature={temperature} must be > 0")
        self.init_epochs = intermediate_epochs
        self.init_lr = intermediate_lr
        self.temperature = temperature
        self.fit_dense = nn.Linear(ctx.student.pooled_dim, ctx.teacher.pooled_dim)
        self.needs = Needs(features=False)  # the prediction step reads logits only; the init stage asks for features

    def init_terms(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        att = sum(attention_mse(attention_scores(*s.qkv[m][:2], s.mask),
                                attention_scores(*t.qkv[self.k * (m + 1) - 1][:2], t.mask))
                  for m in range(len(s.qkv)))
        hidden = sum(hidden_mse(self.fit_dense, s.hidden[m], t.hidden[self.k * m]) for m in range(len(s.hidden)))
        return {"att": att, "hidden": hidden}

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        return {"pred": soft_cross_entropy(s.logits, t.logits, self.temperature)}

    def main_parameters(self) -> Iterable[nn.Parameter]:
        return []  # fit_dense serves the intermediate step only

    def init_parameters(self, student: nn.Module) -> Iterable[nn.Parameter]:
        return [*student.encoder_parameters(), *self.fit_dense.parameters()]


@in_float32
def hidden_mse(fit_dense: nn.Module, h_s: torch.Tensor, h_t: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(fit_dense(h_s), h_t)
