"""Heo, Lee, Yun and Choi, "Knowledge Transfer via Distillation of Activation Boundaries Formed by
Hidden Neurons", AAAI 2019.

AB transfers *where* the teacher's neurons switch on: for the pre-activation maps of every stage
output ``stages[1..n-1]`` (``preact``), the student's value, through a connector (identity when the
shapes agree, else conv + BN), must lie beyond a margin mu = 1 on the teacher's side of zero:

    sum of (s + mu)^2 [s > -mu and t <= 0]  +  (s - mu)^2 [s <= mu and t > 0]

Stage i of n is weighted 2^(i - n + 1) (the deepest 1), the sum is divided by the batch size and
scaled by 3/1000, as in the authors' code and RepDistiller. As in the paper and the reference,
AB is an initialization: an init stage (30 epochs) trains the connectors and the student's feature
layers on this loss alone, then the main epochs train with CE only (beta multiplies no term there).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.feature_maps import ConvRegressor, regressor_fits
from kdrun.methods.pairing import feature_parameters, require_maps, stage_pairs
from kdrun.methods.precision import in_float32
from kdrun.models.features import Features

REFERENCE_SCALE = 3 / 1000  # the authors' code divides the summed loss by 1000 and multiplies it by 3


@in_float32
def boundary_loss(source: torch.Tensor, target: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Summed squared hinge pushing ``source`` to ``target``'s side of zero, at least ``margin`` past it."""
    off = (source + margin).pow(2) * ((source > -margin) & (target <= 0))
    on = (source - margin).pow(2) * ((source <= margin) & (target > 0))
    return (off + on).sum()


def stage_weights(count: int) -> list[float]:
    return [2.0 ** (i - count + 1) for i in range(count)]


class AB(Method):
    needs = Needs(features=True, preact=True)

    def __init__(self, ctx: MethodContext, margin: float = 1.0, init_epochs: int = 30) -> None:
        super().__init__(ctx)
        require_maps("ab", ctx, min_stages=2)
        if init_epochs < 1:
            raise KdrunError(f"method.init_epochs={init_epochs} must be >= 1 (AB transfers only in its init stage)")
        pairs = stage_pairs(ctx, first=1)
        for i, s, t in pairs:
            if s != t and not regressor_fits(s[1:], t[1:]):
                raise KdrunError(f"method=ab: student={ctx.student_arch} map {s[1:]} at stages[{i}] is smaller than "
                                 f"teacher={ctx.teacher_arch}'s {t[1:]} and not half of it; no connector can match them")
        self.margin = margin
        self.init_epochs = init_epochs
        self.positions = [i for i, _, _ in pairs]
        self.weights = stage_weights(len(pairs))
        self.connectors = nn.ModuleList(nn.Identity() if s == t else ConvRegressor(s, t, relu=False)
                                        for _, s, t in pairs)

    def main_parameters(self) -> Iterable[nn.Parameter]:
        return []  # the connectors serve the init stage only

    def init_terms(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        total = s.logits.new_zeros(())
        for k, i in enumerate(self.positions):
            loss = boundary_loss(self.connectors[k](s.preact[i]), t.preact[i], self.margin)
            total = total + self.weights[k] * loss
        return {"ab": total / len(batch.x) * REFERENCE_SCALE}

    def init_parameters(self, student: nn.Module) -> Iterable[nn.Parameter]:
        return [*self.connectors.parameters(), *feature_parameters(student)]
