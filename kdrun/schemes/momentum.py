"""A momentum teacher: an exponential moving average (EMA) of the student teaches the student, in one
training run and with no pre-trained teacher.

Tarvainen and Valpola, "Mean teachers are better role models: Weight-averaged consistency targets
improve semi-supervised deep learning results", NeurIPS 2017 (the EMA teacher, its decay schedule
and the ramp-up of the consistency weight); the same EMA targets serve self-distillation in
Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (DINO), ICCV 2021.

After every optimizer step the teacher's weights follow the student's:
``ema = d * ema + (1 - d) * student`` with ``d = min(scheme.decay, 1 - 1/(step + 1))`` (the mean
teacher's code: early on the average forgets its random start quickly); float buffers (batch-norm
statistics) are averaged the same way. The step's loss is the run's: ``gamma * CE + alpha * T^2 *
KL(ema_T || student_T) + beta * method terms`` (any method: the teacher has the student's
architecture, hence its features), with the distillation part ramped up over
``scheme.warmup_epochs`` by ``exp(-5 (1 - t)^2)`` (Laine and Aila, ICLR 2017; the mean teacher's
``sigmoid_rampup``), since a young average teaches little. The teacher runs in eval mode without
gradient, like every kdrun teacher. Both the student and its EMA are evaluated each epoch and each is
a row (``momentum/student``, ``momentum/ema``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from kdrun.models.foreign_nodes import model_label
from kdrun.errors import KdrunError
from kdrun.schemes.base import Scheme
from kdrun.schemes.pair import Pair

if TYPE_CHECKING:
    from kdrun.engine.stage import Stage
    from kdrun.schemes.context import SchemeContext


class Momentum(Scheme):
    """A label-only baseline (shared with other runs) and the student trained with its own EMA as teacher."""

    name = "momentum"
    stage_names = ("baseline", "momentum")
    primary = "momentum"

    def __init__(self, decay: float = 0.999, warmup_epochs: float = 5) -> None:
        self.decay, self.warmup_epochs = decay, warmup_epochs

    def check(self, cfg: DictConfig) -> None:
        super().check(cfg)
        decay, warmup = self.decay, self.warmup_epochs
        if not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise KdrunError(f"scheme.decay={decay} must be in [0, 1) (the EMA keeps decay * itself each step; "
                             "e.g. 0.999)")
        if not isinstance(warmup, (int, float)) or warmup < 0:
            raise KdrunError(f"scheme.warmup_epochs={warmup} must be >= 0 (epochs over which distillation ramps up)")

    def pairs(self, cfg: DictConfig) -> list[Pair]:
        return [Pair("student", "student", "momentum")] if "momentum" in self.wanted(cfg) else []

    def stages(self, ctx: SchemeContext) -> Iterator[Stage]:
        import copy

        from kdrun.tasks.build import build_mix, loss_weights, optim_settings
        from kdrun.engine.stage import Stage
        from kdrun.tasks.distill import DistillTask
        from kdrun.tasks.momentum import MomentumTask

        wanted = self.wanted(ctx.cfg)
        if "baseline" in wanted:
            yield ctx.supervised_stage("baseline", "baseline", "student", ctx.model("student"))
        if "momentum" in wanted:
            student = ctx.model("student")  # the baseline's initial weights: only the teacher differs
            ema = copy.deepcopy(student)
            method = ctx.method(student, ema, teacher_arch=model_label(ctx.cfg.student))
            inner = DistillTask(student, ema, method, loss_weights(ctx.cfg), mix=build_mix(ctx.cfg.distill))
            task = MomentumTask(inner, ema, float(self.decay), float(self.warmup_epochs))
            stage = Stage("momentum", "momentum", model_label(ctx.cfg.student), ctx.cfg.method.name, task,
                          ctx.epochs(ctx.cfg.trainer.epochs), optim_settings(ctx.cfg),
                          needs_index=method.needs.sample_index)
            stage.info.update(decay=float(self.decay), warmup_epochs=float(self.warmup_epochs))
            yield stage
