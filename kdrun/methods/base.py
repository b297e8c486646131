"""The method interface: a distillation loss, one file per paper.

A method declares what it needs (:class:`Needs`), builds its extra modules (regressors,
embeddings, connectors) from the static :class:`FeatureInfo` of student and teacher, and maps
the two models' :class:`Features` to named loss terms. It never runs a model, never adds
cross-entropy or the KD term (the task does, with ``distill.gamma`` and ``distill.alpha``), and
knows nothing of optimizers. Its extra modules are submodules, so they train with the student
(same optimizer, same weight decay) and are saved in checkpoints.

Methods with an initialization phase (AB, FT, FSP, FitNet's two-stage form) set
``init_epochs`` and implement ``init_terms`` / ``init_parameters``: the pipeline runs that phase
as its own stage, with the same engine, at a constant learning rate (``init_lr``, or the
trainer's when None), as RepDistiller's ``helper/pretrain.py`` does.

A method is built before any stage trains, so a pair it cannot serve (FSP with unequal channel
counts, a feature method on an MLP) fails in its ``__init__`` with a one-line ``KdrunError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from kdrun.data.base import DataInfo
from kdrun.engine.task import Batch, Progress
from kdrun.models.features import FeatureInfo, Features


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


@dataclass(frozen=True)
class Needs:
    """What a method needs beyond logits. Logit-only methods cost no extra work."""

    features: bool = False  # stages and pooled embedding (forward_features)
    preact: bool = False  # pre-activation stage outputs (AB)
    sample_index: bool = False  # dataset index of every sample in the batch (CRD memory banks)


@dataclass(frozen=True)
class MethodContext:
    """Everything a method may use to size itself, known before the first batch."""

    student: FeatureInfo
    teacher: FeatureInfo
    data: DataInfo
    train_targets: torch.Tensor
    student_arch: str = ""
    teacher_arch: str = ""
    weights: LossWeights | None = None  # what the distilled stage trains with (for checks only)


class Method(nn.Module):
    """Base class. Subclasses: ``__init__(self, ctx: MethodContext, **constants)`` + ``forward``."""

    needs: Needs = Needs()
    # The dataset input kinds the method serves: feature-map methods are for images and signals; logit and
    # embedding-relation methods also serve transformers on tokens; the transformer methods only those.
    input_kinds: tuple[str, ...] = ("image", "signal")
    init_epochs: int = 0
    init_lr: float | None = None  # learning rate of the init stage; None = trainer.lr

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__()
        self.ctx = ctx

    def forward(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        """Named, unweighted loss terms; the task sums them and multiplies by ``distill.beta``."""
        return {}

    def main_parameters(self) -> Iterable[nn.Parameter]:
        """Extra parameters trained with the student in the main stage (all of them unless overridden,
        e.g. FT's paraphraser is trained in the init stage, then frozen)."""
        return self.parameters()

    def init_terms(self, s: Features, t: Features, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        """Loss terms of the initialization stage (only for methods with ``init_epochs > 0``)."""
        raise NotImplementedError(f"{type(self).__name__} has no initialization stage")

    def init_parameters(self, student: nn.Module) -> Iterable[nn.Parameter]:
        """Parameters trained during the initialization stage."""
        raise NotImplementedError(f"{type(self).__name__} has no initialization stage")

    @property
    def has_terms(self) -> bool:
        """False for methods that add nothing beyond the KD term (skips feature extraction)."""
        return type(self).forward is not Method.forward
