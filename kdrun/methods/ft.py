"""Kim, Park and Kwak, "Paraphrasing Complex Network: Network Compression via Factor Transfer",
NeurIPS 2018.

A *paraphraser* (a convolutional auto-encoder on the teacher's last conv map ``stages[-1]``,
LeakyReLU 0.1, no BN, factor channels = rate * C_teacher, rate 0.5) is trained first, in an init
stage of 30 epochs, to reconstruct that map (mean squared error); it is then frozen and its
encoder gives the teacher's *factor*. A *translator* (three convs with BN and LeakyReLU) on the
student's last conv map gives the student's factor; it trains with the student on
beta * L1(factor_s, factor_t), beta = 200.

Paper vs reference code. The paper L2-normalizes each vectorized factor (C x H x W) and takes the
L1 norm of the difference. RepDistiller first reduces a factor to a spatial map (channel mean of
its squares), L2-normalizes that and averages the absolute difference. kdrun follows RepDistiller
(``method.factor=map``, the published numbers); ``method.factor=paper`` uses the paper's form
(its scale differs, so retune ``distill.beta``). The reference's init learning rate (0.01 for
ResNet/WRN students, the trainer's otherwise) is the default of ``method.init_lr``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.engine.task import Batch, Progress
from kdrun.errors import KdrunError, choice_error
from kdrun.methods.base import Method, MethodContext, Needs
from kdrun.methods.feature_maps import batch_norm, conv, conv_transpose, match_sizes
from kdrun.methods.pairing import require_maps
from kdrun.methods.precision import in_float32
from kdrun.models.features import Features

FACTORS = ("map", "paper")
# Students for which RepDistiller's init stage uses lr 0.01 (helper/pretrain.py).
LOW_INIT_LR_STUDENTS = ("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                        "resnet8x4", "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2")


def _block(dims: int, layer, c_in: int, c_out: int, bn: bool) -> list[nn.Module]:
    return [layer(dims, c_in, c_out, 3, 1, 1), batch_norm(dims, c_out) if bn else nn.Identity(), nn.LeakyReLU(0.1)]


class Paraphraser(nn.Module):
    """Teacher map -> factor (encoder) -> reconstruction (decoder); no BN, as in the reference."""

    def __init__(self, dims: int, channels: int, factor_channels: int) -> None:
        super().__init__()
        c, k = channels, factor_channels
        self.encoder = nn.Sequential(*_block(dims, conv, c, c, False), *_block(dims, conv, c, k, False),
                                     *_block(dims, conv, k, k, False))
        self.decoder = nn.Sequential(*_block(dims, conv_transpose, k, k, False),
                                     *_block(dims, conv_transpose, k, c, False),
                                     *_block(dims, conv_transpose, c, c, False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def translator(dims: int, channels: int, factor_channels: int) -> nn.Sequential:
    """Student map -> factor: three convs with BN and LeakyReLU, as in the reference."""
    c, k = channels, factor_channels
    return nn.Sequential(*_block(dims, conv, c, c, True), *_block(dims, conv, c, k, True),
                         *_block(dims, conv, k, k, True))


def map_factor(f: torch.Tensor) -> torch.Tensor:
    """RepDistiller's factor: channel mean of f^2, flattened, L2-normalized per sample."""
    return F.normalize(f.pow(2).mean(1).flatten(1), dim=1)


@in_float32
def reconstruction_loss(rebuilt: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paraphraser's init-stage term: mean squared error of its reconstruction of the teacher's map."""
    return F.mse_loss(rebuilt, target)


@in_float32
def ft_loss(factor_s: torch.Tensor, factor_t: torch.Tensor, form: str = "map") -> torch.Tensor:
    """L1 distance of L2-normalized factors (larger factor map pooled to the smaller first)."""
    factor_s, factor_t = match_sizes(factor_s, factor_t)
    if form == "map":
        return (map_factor(factor_s) - map_factor(factor_t)).abs().mean()
    s, t = F.normalize(factor_s.flatten(1), dim=1), F.normalize(factor_t.flatten(1), dim=1)
    return (s - t).abs().sum(1).mean()


class FT(Method):
    needs = Needs(features=True)

    def __init__(self, ctx: MethodContext, rate: float = 0.5, factor: str = "map", init_epochs: int = 30,
                 init_lr: float | None = None) -> None:
        super().__init__(ctx)
        require_maps("ft", ctx)
        if factor not in FACTORS:
            raise choice_error("method.factor", factor, FACTORS)
        if init_epochs < 1:
            raise KdrunError(f"method.init_epochs={init_epochs} must be >= 1 (the paraphraser is trained there)")
        (s_c, *s_size), (t_c, *_) = ctx.student.stage_shape(-1), ctx.teacher.stage_shape(-1)
        k = int(t_c * rate)
        if k < 1:
            raise KdrunError(f"method.rate={rate} leaves no factor channels for a teacher map of {t_c} channels")
        self.form = factor
        self.init_epochs = init_epochs
        self.init_lr = init_lr if init_lr is not None else (0.01 if ctx.student_arch in LOW_INIT_LR_STUDENTS else None)
        self.paraphraser = Paraphraser(len(s_size), t_c, k)
        self.translator = translator(len(s_size), s_c, k)

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        with torch.no_grad():  # the paraphraser is frozen after its init stage
            factor_t = self.paraphraser.encoder(t.stages[-1])
        return {"ft": ft_loss(self.translator(s.stages[-1]), factor_t, self.form)}

    def main_parameters(self) -> Iterable[nn.Parameter]:
        return self.translator.parameters()

    def init_terms(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        target = t.stages[-1]
        return {"reconstruction": reconstruction_loss(self.paraphraser(target), target)}

    def init_parameters(self, student: nn.Module) -> Iterable[nn.Parameter]:
        return self.paraphraser.parameters()
