"""Romero, Ballas, Kahou, Chassang, Gatta and Bengio, "FitNets: Hints for Thin Deep Nets", ICLR 2015.

A *hint*: the student's map at ``stages[hint_layer]`` (the guided layer) goes through a learned
regressor (conv + BN + ReLU, RepDistiller's ``ConvReg``) and is pulled towards the teacher's map
at the same position (the hint layer) by mean squared error.

Paper vs reference code. The paper trains in two stages: first the student up to the guided
layer, with the regressor, on the hint loss alone; then the whole student with Hinton's KD loss.
RepDistiller and mdistiller, whose CIFAR-100 numbers kdrun reproduces, train in one stage from
scratch: CE + beta * hint, beta = 100, ``hint_layer`` 2. kdrun follows the reference code by
default. ``method.two_stage=true`` gives the paper's form: an init stage of ``method.init_epochs``
epochs on the hint alone, then the distilled stage with CE and the KD term only (so it needs
``distill.alpha > 0``, e.g. ``distill.alpha=0.9 distill.gamma=0.1``). The paper's annealing of the
KD weight during its second stage is not reproduced; kdrun's KD term is the usual T^2 * KL.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.feature_maps import ConvRegressor, regressor_fits
from kdrun.methods.pairing import feature_parameters, require_maps
from kdrun.models.features import Features


def hint_loss(regressed: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element (the reference's ``nn.MSELoss``; the paper writes 1/2 ||.||^2)."""
    return F.mse_loss(regressed, target)


class FitNet(Method):
    needs = Needs(features=True)

    def __init__(self, ctx: MethodContext, hint_layer: int = 2, two_stage: bool = False, init_epochs: int = 30) -> None:
        super().__init__(ctx)
        require_maps("fitnet", ctx)
        count = min(ctx.student.num_stages, ctx.teacher.num_stages)
        if not 0 <= hint_layer < count:
            raise KdrunError(f"method.hint_layer={hint_layer} is not a stage of both models; valid choices: "
                             f"{', '.join(map(str, range(count)))}")
        s_shape, t_shape = ctx.student.stage_shape(hint_layer), ctx.teacher.stage_shape(hint_layer)
        if not regressor_fits(s_shape[1:], t_shape[1:]):
            raise KdrunError(f"method=fitnet: student={ctx.student_arch} map {s_shape[1:]} at stages[{hint_layer}] "
                             f"is smaller than teacher={ctx.teacher_arch}'s {t_shape[1:]} and not half of it; "
                             f"choose another method.hint_layer or a pair with equal map sizes")
        if two_stage and ctx.weights is not None and ctx.weights.alpha <= 0:
            raise KdrunError("method.two_stage=true trains its second stage with the KD term, but distill.alpha=0; "
                             "add e.g. distill.alpha=0.9 distill.gamma=0.1")
        if init_epochs < 0:
            raise KdrunError(f"method.init_epochs={init_epochs} must be >= 0")
        self.hint_layer = hint_layer
        self.two_stage = two_stage
        self.init_epochs = init_epochs if two_stage else 0
        self.regressor = ConvRegressor(s_shape, t_shape, relu=True)

    @property
    def has_terms(self) -> bool:
        return not self.two_stage  # the paper's second stage is CE + KD only

    def hint(self, s: Features, t: Features) -> dict[str, torch.Tensor]:
        k = self.hint_layer
        return {"hint": hint_loss(self.regressor(s.stages[k]), t.stages[k])}

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        return self.hint(s, t)

    def main_parameters(self) -> Iterable[nn.Parameter]:
        return [] if self.two_stage else self.parameters()

    def init_terms(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        return self.hint(s, t)

    def init_parameters(self, student: nn.Module) -> Iterable[nn.Parameter]:
        # The paper trains the layers up to the guided one; later layers get no gradient, and SGD
        # skips parameters without one (no weight decay either), so passing all feature layers is the same.
        return [*feature_parameters(student), *self.regressor.parameters()]
