"""The momentum teacher's task: the student's EMA teaches it, updated after every optimizer step
(kdrun/schemes/momentum.py has the scheme and its references)."""

from __future__ import annotations

import math

import torch
from torch import nn

from kdrun.engine.task import Batch, Progress, StepOutput, Task
from kdrun.tasks.distill import DistillTask


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
