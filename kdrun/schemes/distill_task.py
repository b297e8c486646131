"""The distillation step: gamma * CE + alpha * T^2 * KL(teacher_T || student_T) + beta * method terms."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.methods.base import Method
from kdrun.methods.kd import kd_loss
from kdrun.models.features import Features
from kdrun.schemes.task import Batch, Frozen, Progress, StepOutput, Task, frozen


@dataclass(frozen=True)
class LossWeights:
    """The ``distill`` config group. ``gamma=None`` means Hinton's convention: CE weight 1 - alpha."""

    T: float = 4.0
    alpha: float = 0.9
    gamma: float | None = None
    beta: float = 0.0

    @property
    def ce_weight(self) -> float:
        return 1.0 - self.alpha if self.gamma is None else self.gamma


class DistillTask(Task):
    """Trains ``student`` (and the method's extra modules) against a frozen ``teacher``.

    The method runs only when it has terms and ``beta > 0``; features are extracted only when it
    also declares ``needs.features`` (or ``needs.preact``), so logit-only methods (DKD) cost no
    more than KD. The teacher runs only when some term uses it. Both see the same tensor
    ``batch.x``: the same augmented view.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | Frozen, method: Method, weights: LossWeights) -> None:
        super().__init__()
        self.student = student
        self.method = method
        self.teacher = teacher if isinstance(teacher, Frozen) else frozen(teacher)
        self.weights = weights
        self.use_method = method.has_terms and weights.beta > 0
        self.use_features = self.use_method and (method.needs.features or method.needs.preact)
        self.use_teacher = self.use_method or weights.alpha > 0

    @property
    def eval_model(self) -> nn.Module:
        return self.student

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = [*self.student.parameters(), *self.method.main_parameters()]
        return [p for p in params if p.requires_grad]

    def forward(self, batch: Batch, progress: Progress) -> StepOutput:
        w, preact = self.weights, self.method.needs.preact
        if self.use_features:
            s = self.student.forward_features(batch.x, preact=preact)
            t = self.teacher.features(batch.x, preact=preact)
        else:
            s = Features(logits=self.student(batch.x))
            t = Features(logits=self.teacher(batch.x)) if self.use_teacher else None
        terms: dict[str, torch.Tensor] = {}
        loss = s.logits.new_zeros(())
        if w.ce_weight > 0:
            terms["ce"] = F.cross_entropy(s.logits, batch.y)
            loss = loss + w.ce_weight * terms["ce"]
        if w.alpha > 0:
            terms["kd"] = kd_loss(s.logits, t.logits, w.T)
            loss = loss + w.alpha * terms["kd"]
        if self.use_method:
            for name, value in self.method(s, t, batch, progress).items():
                terms[name] = value
                loss = loss + w.beta * value
        return StepOutput(loss, s.logits, terms)


class InitTask(Task):
    """A method's initialization phase (AB, FT, FSP, FitNet's hint stage): only its own terms,
    only the parameters the method names; the teacher stays frozen.

    As in RepDistiller's ``helper/pretrain.py``, the student is in train mode only when some of its
    parameters are trained here (AB, FSP); otherwise (FT's paraphraser) it stays in eval mode and
    runs without gradients, so its batch-norm statistics are left untouched.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | Frozen, method: Method) -> None:
        super().__init__()
        self.student = student
        self.method = method
        self.teacher = teacher if isinstance(teacher, Frozen) else frozen(teacher)
        trained = {id(p) for p in method.init_parameters(student)}
        self.trains_student = any(id(p) in trained for p in student.parameters())

    @property
    def eval_model(self) -> nn.Module:
        return self.student

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.method.init_parameters(self.student) if p.requires_grad]

    def train(self, mode: bool = True) -> "InitTask":
        super().train(mode)
        if not self.trains_student:
            self.student.eval()
        return self

    def forward(self, batch: Batch, progress: Progress) -> StepOutput:
        preact = self.method.needs.preact
        with torch.set_grad_enabled(self.trains_student and torch.is_grad_enabled()):
            s = self.student.forward_features(batch.x, preact=preact)
        t = self.teacher.features(batch.x, preact=preact)
        terms = self.method.init_terms(s, t, batch, progress)
        loss = sum(terms.values(), s.logits.new_zeros(()))
        return StepOutput(loss, s.logits, terms)
