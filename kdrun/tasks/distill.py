"""The distillation step: gamma * CE + alpha * T^2 * KL(teacher_T || student_T) + beta * method terms.

CE is computed on the labeled batch; the distillation terms on the *distillation input*: the
labeled batch itself by default, or a transfer batch (Hinton et al., 2015, sec. 3), optionally
mixed (function matching, Beyer et al., CVPR 2022).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.data.mix import BatchMix
from kdrun.engine.task import Batch, Frozen, Progress, StepOutput, Task, frozen
from kdrun.methods.base import LossWeights, Method
from kdrun.methods.gkd import token_kd_loss
from kdrun.methods.kd import kd_loss
from kdrun.models.features import Features
from kdrun.tasks.select import SampleSelection, subset


class DistillTask(Task):
    """Trains ``student`` (and the method's extra modules) against a frozen ``teacher``.

    The method runs only when it has terms and ``beta > 0``; features are extracted only when it
    also declares ``needs.features`` (or ``needs.preact``), so logit-only methods (DKD) cost no
    more than KD. The teacher runs only when some term uses it.

    A step has two views. The labeled view ``batch.x`` feeds cross-entropy (and the train top-1).
    The distillation view feeds the distillation terms: ``batch.transfer_x`` when a transfer set is
    used, else ``batch.x``, mixed by ``mix`` when set. In each view teacher and student are given
    the same tensor, so they always see the same augmented (and mixed) input. When the two views
    are one tensor (no transfer set, no mix: the default) there is a single pass, as in plain KD;
    otherwise the student makes a second pass for CE (without gradient when ``gamma = 0``).

    Methods that need dataset indices (memory banks over the training set) get the labeled view,
    since only labeled samples have indices; the KD term still uses the distillation view. Other
    methods get the distillation view's batch: on mixed labeled inputs ``y`` and ``index`` are those
    of each sample's dominant original (mix folds lam >= 0.5); on transfer inputs there is no index
    and ``y`` is the teacher's prediction, the only label there is.

    With ``select`` (selective distillation, kdrun/tasks/select.py) the distillation terms see only
    the selected samples of the distillation view, scaled by (selected / batch size); the share selected
    is logged as the ``selected`` entry of the terms. Only logit terms can be selected (checked by the
    scheme context); CE always uses the whole labeled batch.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | Frozen, method: Method, weights: LossWeights,
                 mix: BatchMix | None = None, select: SampleSelection | None = None) -> None:  # fmt: skip
        super().__init__()
        self.student = student
        self.method = method
        self.teacher = teacher if isinstance(teacher, Frozen) else frozen(teacher)
        self.weights = weights
        self.mix = mix
        self.use_method = method.has_terms and weights.beta > 0
        self.use_features = self.use_method and (method.needs.features or method.needs.preact)
        self.use_teacher = self.use_method or weights.alpha > 0
        self.labeled_method = self.use_method and method.needs.sample_index
        self.uses_distill_view = weights.alpha > 0 or (self.use_method and not self.labeled_method)
        self.select = select if self.uses_distill_view else None  # nothing to select when nothing distils
        # The teacher's logits are all a step needs from it: they may be replayed (kdrun/engine/teacher_outputs.py)
        self.replayable = self.use_teacher and not self.use_features and not self.labeled_method
        self.outputs = None  # a TeacherLogits when distill.teacher_outputs is not 'compute'

    @property
    def eval_model(self) -> nn.Module:
        return self.student

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = [*self.student.parameters(), *self.method.main_parameters()]
        return [p for p in params if p.requires_grad]

    def distill_input(self, batch: Batch) -> torch.Tensor:
        """What teacher and student both see for the distillation terms."""
        if not self.uses_distill_view:  # no term needs it: stay on the labeled batch
            return batch.x
        x = batch.x if batch.transfer_x is None else batch.transfer_x
        return x if self.mix is None else self.mix(x)

    def forward(self, batch: Batch, progress: Progress) -> StepOutput:
        x = self.distill_input(batch)
        if x is batch.x:
            s, t = self._run(x, features=self.use_features, teacher=self.use_teacher, progress=progress)
            labeled_s, labeled_t = s, t
        else:
            s, t = self._run(x, features=self.use_features and not self.labeled_method, teacher=True,
                             progress=progress)
            labeled_s, labeled_t = self._run(batch.x, features=self.labeled_method and self.use_features,
                                             teacher=self.labeled_method,
                                             grad=self.weights.ce_weight > 0 or self.labeled_method)
        w = self.weights
        terms: dict[str, torch.Tensor] = {}
        weighted: list[torch.Tensor] = []
        if w.ce_weight > 0:
            terms["ce"] = F.cross_entropy(labeled_s.logits, batch.y)
            weighted.append(w.ce_weight * terms["ce"])
        view_used = self.select is not None or (self.use_method and not self.labeled_method)
        view = self._view_batch(batch, x, t) if view_used else batch
        scale = None
        if self.select is not None:
            s, t, view, scale = self._selected(s, t, view, progress, terms)
        if w.alpha > 0:
            terms["kd"] = _scaled(self._kd(s, t, view), scale)
            weighted.append(w.alpha * terms["kd"])
        if self.use_method:
            args = (labeled_s, labeled_t, batch) if self.labeled_method else (s, t, view)
            for name, value in self.method(*args, progress).items():
                terms[name] = _scaled(value, scale)
                weighted.append(w.beta * terms[name])
        loss = sum(weighted[1:], weighted[0]) if weighted else labeled_s.logits.sum() * 0.0
        return StepOutput(loss, labeled_s.logits, terms)

    def _kd(self, s: Features, t: Features, view: Batch) -> torch.Tensor:
        """Hinton's term; on next-token data (targets (B, L)) per kept position: T^2 * forward KL (GKD at beta 0)."""
        if view.y is not None and view.y.dim() > 1:
            return token_kd_loss(s.logits, t.logits, view.y, self.weights.T)
        return kd_loss(s.logits, t.logits, self.weights.T)

    def _run(self, x: torch.Tensor, features: bool, teacher: bool, grad: bool = True,
             progress: Progress | None = None) -> tuple[Features, Features | None]:  # fmt: skip
        """Student (with gradient unless ``grad=False``) and, if asked, teacher on the same tensor ``x``."""
        preact = self.method.needs.preact
        # the teacher first: its activations are freed before the student's graph is built
        if features:
            t = self.teacher.features(x, preact=preact)
        elif teacher and self.outputs is not None and progress is not None:
            t = Features(logits=self.outputs(x, progress.epoch, progress.step, progress.steps_per_epoch))
        else:
            t = Features(logits=self.teacher(x)) if teacher else None
        with contextlib.nullcontext() if grad else torch.no_grad():
            s = self.student.forward_features(x, preact=preact) if features else Features(logits=self.student(x))
        return s, t

    def _selected(self, s: Features, t: Features, view: Batch, progress: Progress, terms: dict
                  ) -> tuple[Features, Features, Batch, torch.Tensor | None]:  # fmt: skip
        """The selected samples' logits and batch, and (selected / batch size); everything during the warm-up."""
        if not self.select.active(progress):
            terms["selected"] = s.logits.new_ones(())
            return s, t, view, None
        mask = self.select.mask(s.logits.detach(), t.logits, view.y)
        terms["selected"] = mask.float().mean()
        return (*subset(s, t, view, mask), terms["selected"])

    @staticmethod
    def _view_batch(batch: Batch, x: torch.Tensor, t: Features) -> Batch:
        """The batch a method sees on the distillation view."""
        if x is batch.x:
            return batch
        if batch.transfer_x is None:
            return Batch(x, batch.y, batch.index)
        return Batch(x, t.logits.argmax(1))


def _scaled(term: torch.Tensor, share: torch.Tensor | None) -> torch.Tensor:
    """A batch-mean term over the selected samples -> their sum over the whole batch (the mean times the share
    selected); 0 when nothing is selected (the mean of no sample is NaN: ``where`` keeps it out, gradients too)."""
    if share is None:
        return term
    return torch.where(share > 0, term * share, torch.zeros_like(term))


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


class DMLTask(Task):
    """Deep mutual learning's step (kdrun/schemes/dml.py): one forward per peer, one summed loss, one optimizer.

    Peer i: ``gamma * CE(z_i, y) + alpha * mean_{j != i} T^2 * KL(p_j || p_i)``, every other peer's
    prediction detached, so each term trains only peer i."""

    def __init__(self, peers: list[nn.Module], weights: LossWeights) -> None:
        super().__init__()
        if len(peers) < 2:
            raise ValueError("mutual learning needs at least two peers")
        self.peers = nn.ModuleList(peers)
        self.weights = weights

    @property
    def eval_model(self) -> nn.Module:
        return self.peers[0]

    @property
    def eval_models(self) -> dict[str, nn.Module]:
        return {f"peer{i + 1}": p for i, p in enumerate(self.peers)}

    def forward(self, batch: Batch, progress: Progress) -> StepOutput:
        w = self.weights
        logits = [peer(batch.x) for peer in self.peers]
        targets = [z.detach() for z in logits]
        loss = logits[0].new_zeros(())
        terms: dict[str, torch.Tensor] = {}
        for i, z in enumerate(logits):
            ce = F.cross_entropy(z, batch.y)
            kl = torch.stack([kd_loss(z, t, w.T) for j, t in enumerate(targets) if j != i]).mean()
            terms[f"ce_peer{i + 1}"], terms[f"kl_peer{i + 1}"] = ce, kl
            loss = loss + w.ce_weight * ce + w.alpha * kl
        return StepOutput(loss, logits[0], terms)
