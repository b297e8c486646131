"""Yim, Joo, Bae and Kim, "A Gift from Knowledge Distillation: Fast Optimization, Network
Minimization and Transfer Learning", CVPR 2017.

The "flow of solution procedure" (FSP) matrix between two consecutive maps F1 (C1 channels) and
F2 (C2 channels) of the same model is G = F2 F1^T / (positions): a C2 x C1 matrix of channel
correlations, the larger map average-pooled to the smaller first. The student learns to
reproduce the teacher's FSP matrices between every consecutive pair of the stem and stage
outputs (``stages[0..n-1]``), so the two models need the same channel count at every position.

Both the paper and RepDistiller use FSP as an initialization: an init stage (30 epochs) trains the
student's feature layers on the sum over pairs of mean squared differences, then the main epochs
train with CE only (the reference's beta = 50 is passed but multiplies no term there; adding
``distill.alpha`` adds the KD term).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.feature_maps import match_sizes
from kdrun.methods.pairing import archs_matching, feature_parameters, require_maps
from kdrun.methods.precision import in_float32
from kdrun.models.features import Features


def fsp_matrix(bottom: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """(B, C1, *spatial), (B, C2, *spatial') -> (B, C2, C1): mean over positions of top_j * bottom_i."""
    bottom, top = match_sizes(bottom, top)
    b, t = bottom.flatten(2), top.flatten(2)
    return torch.bmm(t, b.transpose(1, 2)) / b.shape[2]


@in_float32
def fsp_loss(s_maps: list[torch.Tensor], t_maps: list[torch.Tensor]) -> torch.Tensor:
    """Sum over consecutive pairs of the mean squared difference of student and teacher FSP matrices."""
    losses = [(fsp_matrix(s_maps[i], s_maps[i + 1]) - fsp_matrix(t_maps[i], t_maps[i + 1])).pow(2).mean()
              for i in range(len(s_maps) - 1)]
    return sum(losses)


class FSP(Method):
    needs = Needs(features=True)

    def __init__(self, ctx: MethodContext, init_epochs: int = 30) -> None:
        super().__init__(ctx)
        require_maps("fsp", ctx, min_stages=2)
        if ctx.student.stage_channels != ctx.teacher.stage_channels:
            wanted = ctx.teacher.stage_channels
            fits = archs_matching(ctx.data, lambda i: i.stage_channels == wanted)
            raise KdrunError(
                f"method=fsp needs equal channel counts at every stage (FSP matrices are C_i x C_i+1), but "
                f"student={ctx.student_arch} has {ctx.student.stage_channels} and teacher={ctx.teacher_arch} has "
                f"{wanted}; FSP works only for pairs with identical stage channels (architectures with {wanted} here: "
                f"{', '.join(fits) or 'none with default options'})")
        if init_epochs < 1:
            raise KdrunError(f"method.init_epochs={init_epochs} must be >= 1 (FSP transfers only in its init stage)")
        self.init_epochs = init_epochs

    def init_terms(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        return {"fsp": fsp_loss(s.stages, t.stages)}

    def init_parameters(self, student: nn.Module) -> Iterable[nn.Parameter]:
        return feature_parameters(student)
