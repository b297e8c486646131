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

import copy
import math
from collections.abc import Iterator

import torch
from torch import nn

from kdrun.build import build_mix, loss_weights, optim_settings
from kdrun.engine.stage import Stage
from kdrun.engine.task import Batch, Progress, StepOutput, Task
from kdrun.errors import KdrunError
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.distill_task import DistillTask
from kdrun.schemes.requires import needed

STAGES = ("baseline", "momentum")


def rampup(t: float) -> float:
    """exp(-5 (1 - t)^2) for t in [0, 1], then 1 (the mean teacher's sigmoid ramp-up)."""
    return 1.0 if t >= 1 else math.exp(-5.0 * (1.0 - max(t, 0.0)) ** 2)


class MomentumTask(Task):
    """A distillation task whose teacher is the EMA of its student, updated after every optimizer step."""

    def __init__(self, inner: DistillTask, ema: nn.Module, decay: float, warmup_epochs: float) -> None:
        super().__init__()
        self.inner, self.ema = inner, ema  # ema is inner's (frozen) teacher, registered here to be checkpointed
        self.decay, self.warmup_epochs = decay, warmup_epochs
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @property
    def eval_model(self) -> nn.Module:
        return self.inner.student

    @property
    def eval_models(self) -> dict[str, nn.Module]:
        return {"student": self.inner.student, "ema": self.ema}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return self.inner.trainable_parameters()

    def train(self, mode: bool = True) -> "MomentumTask":
        super().train(mode)
        self.ema.eval()  # a teacher: always in eval mode
        return self

    def forward(self, batch: Batch, progress: Progress) -> StepOutput:
        out = self.inner(batch, progress)
        t = ((progress.epoch - 1) + progress.step / max(progress.steps_per_epoch, 1)) / self.warmup_epochs \
            if self.warmup_epochs > 0 else 1.0
        ramp = rampup(t)
        if ramp < 1.0:  # only the distillation part is ramped; CE keeps its weight
            ce = self.inner.weights.ce_weight * out.terms["ce"] if "ce" in out.terms else 0.0
            out.loss = ce + ramp * (out.loss - ce)
        return out

    @torch.no_grad()
    def after_step(self) -> None:
        self.steps += 1
        d = min(self.decay, 1.0 - 1.0 / (int(self.steps) + 1))
        student = self.inner.student.state_dict()
        for name, value in self.ema.state_dict().items():
            if value.is_floating_point():
                value.mul_(d).add_(student[name].detach(), alpha=1.0 - d)
            else:
                value.copy_(student[name])


def check(cfg) -> None:
    decay, warmup = cfg.scheme.get("decay"), cfg.scheme.get("warmup_epochs")
    if not isinstance(decay, (int, float)) or not 0 <= decay < 1:
        raise KdrunError(f"scheme.decay={decay} must be in [0, 1) (the EMA keeps decay * itself each step; e.g. 0.999)")
    if not isinstance(warmup, (int, float)) or warmup < 0:
        raise KdrunError(f"scheme.warmup_epochs={warmup} must be >= 0 (epochs over which distillation ramps up)")


def momentum(ctx: SchemeContext) -> Iterator[Stage]:
    """A label-only baseline (shared with other runs) and the student trained with its own EMA as teacher."""
    wanted = needed(ctx.cfg.stages, {})
    if "baseline" in wanted:
        yield ctx.supervised_stage("baseline", "baseline", "student", ctx.model("student"))
    if "momentum" in wanted:
        student = ctx.model("student")  # the baseline's initial weights: only the teacher differs
        ema = copy.deepcopy(student)
        method = ctx.method(student, ema, teacher_arch=ctx.cfg.student.arch)
        inner = DistillTask(student, ema, method, loss_weights(ctx.cfg), mix=build_mix(ctx.cfg.distill))
        s = ctx.cfg.scheme
        task = MomentumTask(inner, ema, float(s.decay), float(s.warmup_epochs))
        stage = Stage("momentum", "momentum", ctx.cfg.student.arch, ctx.cfg.method.name, task,
                      ctx.epochs(ctx.cfg.trainer.epochs), optim_settings(ctx.cfg.trainer), needs_index=method.needs.sample_index)
        stage.info.update(decay=float(s.decay), warmup_epochs=float(s.warmup_epochs))
        yield stage
