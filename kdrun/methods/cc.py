"""Peng et al., "Correlation Congruence for Knowledge Distillation", ICCV 2019.

Both models' pooled embeddings are projected to ``feat_dim`` (128) by trained linear embeddings
(one for the student, one for the teacher; both are trained with the student, the teacher's
own weights are not), and the loss compares how samples of the batch correlate.

Two forms, chosen with ``method.form``:

* ``reference`` (default): the code RepDistiller received from the paper's authors and used for
  the published CIFAR-100 tables (``CC.py``): with ``delta = |e_s - e_t|``, the mean over
  consecutive sample pairs of ``sum_d |delta_i| * |delta_{i+1}|``. It is the default because its
  weight (beta 0.02) and numbers are the ones kdrun is compared against.
* ``gaussian``: the paper's formula, as other reimplementations write it: the embeddings are
  L2-normalized, the correlation matrix is the Gaussian RBF kernel approximated by its Taylor
  series, ``k(x, y) = sum_{p=0..order} exp(-2 gamma) (2 gamma)^p / p! (x.y)^p`` (``kernel_gamma`` 0.4,
  ``taylor_order`` 2), and the loss is the mean squared difference of the B x B matrices. Its scale differs
  from the reference form, so beta needs re-tuning with it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kdrun.engine.task import Batch, Progress
from kdrun.errors import choice_error
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.embed import LinearEmbed
from kdrun.methods.precision import no_autocast, widen
from kdrun.models.features import Features

FORMS = ("reference", "gaussian")


def cc_reference_loss(e_s: torch.Tensor, e_t: torch.Tensor) -> torch.Tensor:
    """Mean over i of sum_d |e_s - e_t|_i,d * |e_s - e_t|_{i+1},d (RepDistiller's Correlation)."""
    delta = (e_s - e_t).abs()
    return (delta[:-1] * delta[1:]).sum(dim=1).mean()


def taylor_gaussian_kernel(e: torch.Tensor, gamma: float, order: int) -> torch.Tensor:
    """B x B correlation matrix: P-order Taylor expansion of exp(-gamma ||x - y||^2) for unit x, y."""
    sim = F.normalize(e, p=2, dim=1) @ F.normalize(e, p=2, dim=1).t()
    terms = [math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * sim.pow(p) for p in range(order + 1)]
    return torch.stack(terms).sum(dim=0)


def cc_gaussian_loss(e_s: torch.Tensor, e_t: torch.Tensor, gamma: float = 0.4, order: int = 2) -> torch.Tensor:
    return F.mse_loss(taylor_gaussian_kernel(e_s, gamma, order), taylor_gaussian_kernel(e_t, gamma, order))


class CC(Method):
    """Returns ``cc``; ``embed_s``/``embed_t`` are trained with the student."""
    input_kinds = ("image", "signal", "tokens")  # on transformers: their logits and [CLS] embeddings

    needs = Needs(features=True)

    def __init__(self, ctx: MethodContext, feat_dim: int = 128, form: str = "reference", kernel_gamma: float = 0.4,
                 taylor_order: int = 2) -> None:
        super().__init__(ctx)
        if form not in FORMS:
            raise choice_error("method.form", form, FORMS)
        self.form, self.kernel_gamma, self.taylor_order = form, kernel_gamma, taylor_order
        self.embed_s = LinearEmbed(ctx.student.pooled_dim, feat_dim)
        self.embed_t = LinearEmbed(ctx.teacher.pooled_dim, feat_dim)

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        with no_autocast(s.pooled):
            e_s, e_t = self.embed_s(widen(s.pooled)), self.embed_t(widen(t.pooled))
            if self.form == "gaussian":
                return {"cc": cc_gaussian_loss(e_s, e_t, self.kernel_gamma, self.taylor_order)}
            return {"cc": cc_reference_loss(e_s, e_t)}
