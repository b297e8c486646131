"""The distillation step: gamma * CE + alpha * T^2 * KL(teacher_T || student_T) + beta * method terms.

CE is computed on the labeled batch; the distillation terms on the *distillation input*: the
labeled batch itself by default, or a transfer batch (Hinton et al., 2015, sec. 3), optionally
mixed (function matching, Beyer et al., CVPR 2022).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.data.mix import BatchMix
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

    Features are extracted only when the method has terms and ``beta > 0``; the teacher runs
    only when some term uses it.

    The distillation terms use one tensor, the distillation input: ``batch.transfer_x`` when a
    transfer set is used, else ``batch.x``, mixed by ``mix`` when set. Teacher and student are
    given that same tensor, so they always see the same augmented (and mixed) view. Cross-entropy
    always uses the clean labeled ``batch.x``; when the distillation input differs from it, the
    student runs a second pass for CE (without gradient when ``gamma = 0``: then the pass only
    feeds the train top-1). Without transfer set and mix there is a single pass.

    Methods get the distillation batch: ``x`` is the distillation input; on mixed labeled inputs
    ``y`` and ``index`` are those of each sample's dominant original (mix folds lam >= 0.5); on
    transfer inputs there is no index and ``y`` is the teacher's prediction, the only label there.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | Frozen, method: Method, weights: LossWeights,
                 mix: BatchMix | None = None) -> None:  # fmt: skip
        super().__init__()
        self.student = student
        self.method = method
        self.teacher = teacher if isinstance(teacher, Frozen) else frozen(teacher)
        self.weights = weights
        self.mix = mix
        self.use_features = method.has_terms and weights.beta > 0
        self.use_teacher = self.use_features or weights.alpha > 0

    @property
    def eval_model(self) -> nn.Module:
        return self.student

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = [*self.student.parameters(), *self.method.main_parameters()]
        return [p for p in params if p.requires_grad]

    def forward(self, batch: Batch, progress: Progress) -> StepOutput:
        w = self.weights
        x = self.distill_input(batch)
        s, t = self._student_and_teacher(x)
        logits = s.logits if x is batch.x else self._clean_logits(batch.x)
        terms: dict[str, torch.Tensor] = {}
        loss = logits.new_zeros(())
        if w.ce_weight > 0:
            terms["ce"] = F.cross_entropy(logits, batch.y)
            loss = loss + w.ce_weight * terms["ce"]
        if w.alpha > 0:
            terms["kd"] = kd_loss(s.logits, t.logits, w.T)
            loss = loss + w.alpha * terms["kd"]
        if self.use_features:
            for name, value in self.method(s, t, self._method_batch(batch, x, t), progress).items():
                terms[name] = value
                loss = loss + w.beta * value
        return StepOutput(loss, logits, terms)

    def distill_input(self, batch: Batch) -> torch.Tensor:
        """What teacher and student both see for the distillation terms."""
        if not self.use_teacher:  # no distillation term: nothing to feed
            return batch.x
        x = batch.x if batch.transfer_x is None else batch.transfer_x
        return x if self.mix is None else self.mix(x)

    def _student_and_teacher(self, x: torch.Tensor) -> tuple[Features, Features | None]:
        preact = self.method.needs.preact
        if self.use_features:
            return self.student.forward_features(x, preact=preact), self.teacher.features(x, preact=preact)
        t = Features(logits=self.teacher(x)) if self.use_teacher else None
        return Features(logits=self.student(x)), t

    def _clean_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.weights.ce_weight > 0:
            return self.student(x)
        with torch.no_grad():
            return self.student(x)

    @staticmethod
    def _method_batch(batch: Batch, x: torch.Tensor, t: Features) -> Batch:
        if x is batch.x:
            return batch
        if batch.transfer_x is None:
            return Batch(x, batch.y, batch.index)
        return Batch(x, t.logits.argmax(1))


class InitTask(Task):
    """A method's initialization phase (AB, FT, FSP, FitNet's hint stage): only its own terms,
    only the parameters the method names; the teacher stays frozen."""

    def __init__(self, student: nn.Module, teacher: nn.Module | Frozen, method: Method) -> None:
        super().__init__()
        self.student = student
        self.method = method
        self.teacher = teacher if isinstance(teacher, Frozen) else frozen(teacher)

    @property
    def eval_model(self) -> nn.Module:
        return self.student

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.method.init_parameters(self.student) if p.requires_grad]

    def forward(self, batch: Batch, progress: Progress) -> StepOutput:
        preact = self.method.needs.preact
        s = self.student.forward_features(batch.x, preact=preact)
        t = self.teacher.features(batch.x, preact=preact)
        terms = self.method.init_terms(s, t, batch, progress)
        loss = sum(terms.values(), s.logits.new_zeros(()))
        return StepOutput(loss, s.logits, terms)
