"""On-the-fly native ensemble: Lan, Zhu and Gong, "Knowledge Distillation by On-the-Fly Native
Ensemble", NeurIPS 2018 (reference code: github.com/Lan1991Xu/ONE_NeurIPS2018). One stage, no
pre-trained teacher.

The student's last stage is copied into N branches that share its lower layers (the trunk); each
branch is initialized on its own (branch i from seed + i - 1), as in the reference code. A gate
(one linear layer on the globally pooled trunk output, batch norm, ReLU, softmax) weights the
branches' logits into the ensemble teacher ``z_e = sum_i g_i z_i``. The loss is

    sum_i CE(z_i, y) + CE(z_e, y) + T^2 sum_i KL(softmax(z_e / T) || softmax(z_i / T)),   T = 3,

with the ensemble's soft targets detached in the KL terms, as in the reference code's ``KLLoss``.
Branch 1 is the student architecture itself (its trunk and its own last stage), so it deploys as a
plain model of that architecture; the ensemble (all branches and the gate) is the other deployable
model. Each is a row: ``one/branch1`` and ``one/ensemble``.

``scheme.variant=collaborative`` is Song and Chai, "Collaborative Learning for Deep Neural Networks",
NeurIPS 2018: no gate; each head h learns from the consensus of the other heads, the softmax of their
mean logits (detached: a constant target, as the teacher of KD),

    sum_h (1 - beta) CE(z_h, y) + beta T^2 KL(softmax(mean_{j != h} z_j / T) || softmax(z_h / T)),

with the paper's T = 2, beta = 0.5 (its beta weighs CE; at 0.5 the two readings agree), and its
backpropagation rescaling: at every split the gradient the children send back is divided by their
number. ``scheme.splits`` builds its hierarchical sharing: the fan-out at each split depth, at the
student's last stage boundaries (``[2, 2]`` on a 3-stage ResNet: 2 heads after stage 1, each split
again after stage 2: 4 heads, the paper's CIFAR tree); without it, ``scheme.branches`` heads split at
the last stage (the paper's simple ILR sharing). The ``ensemble`` row averages the heads' logits.

Models declare their stages by implementing ``split_stages`` (CIFAR ResNets, WRNs, mlp, cnn1d), a
chain of parts whose boundaries are the depths a head can branch at; a student that does not is
refused in one line naming the ones that do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from kdrun.models.foreign_nodes import model_label
from kdrun.errors import KdrunError, choice_error
from kdrun.schemes.base import Scheme

if TYPE_CHECKING:
    from kdrun.engine.stage import Stage
    from kdrun.schemes.context import SchemeContext

VARIANTS = ("one", "collaborative")


class One(Scheme):
    """A label-only baseline (shared with other runs), then the branched student trained in one stage."""

    name = "one"
    stage_names = ("baseline", "one")
    primary = "one"

    def __init__(self, variant: str = "one", branches: int = 3, T: float = 3.0, beta: float = 0.5,
                 splits: list[int] | None = None) -> None:
        self.variant, self.branches, self.T, self.beta = variant, branches, T, beta
        self.splits = None if splits is None else list(splits)

    @property
    def tree(self) -> list[int]:
        """The fan-out at each split depth: ``scheme.splits``, else ``scheme.branches`` at the last stage."""
        return self.splits if self.splits is not None else [self.branches]

    def check(self, cfg: DictConfig) -> None:
        super().check(cfg)
        if self.variant not in VARIANTS:
            raise choice_error("scheme.variant", self.variant, VARIANTS)
        n = self.branches
        if not isinstance(n, int) or isinstance(n, bool) or n < 2:
            raise KdrunError(f"scheme.branches={n} must be an integer >= 2 (the paper uses 3)")
        if self.splits is not None:
            if self.variant != "collaborative":
                raise KdrunError(f"scheme.splits={self.splits} needs scheme.variant=collaborative (ONE branches only "
                                 f"at the last stage: scheme.branches)")
            if not self.splits or not all(isinstance(f, int) and not isinstance(f, bool) and f >= 2
                                          for f in self.splits):
                raise KdrunError(f"scheme.splits={self.splits} must be a non-empty list of integers >= 2 (the fan-out "
                                 f"at each split depth, e.g. [2,2]), or null")
        if not isinstance(self.T, (int, float)) or not self.T > 0:
            raise KdrunError(f"scheme.T={self.T} must be > 0 (ONE uses 3, collaborative learning 2)")
        if not isinstance(self.beta, (int, float)) or not 0 <= self.beta <= 1:
            raise KdrunError(f"scheme.beta={self.beta} must be in [0, 1] (collaborative learning's KL weight)")

    def stages(self, ctx: SchemeContext) -> Iterator[Stage]:
        from kdrun.tasks.build import optim_settings
        from kdrun.engine.stage import Stage
        from kdrun.schemes.one_task import OneTask, branched_student

        wanted = self.wanted(ctx.cfg)
        net = branched_student(ctx, self.tree, self.variant == "one") if "one" in wanted else None
        if "baseline" in wanted:  # the refusal above comes before anything trains
            yield ctx.supervised_stage("baseline", "baseline", "student", ctx.model("student"))
        if net is not None:
            task = OneTask(net, self.variant, float(self.T), float(self.beta))
            stage = Stage("one", self.variant, model_label(ctx.cfg.student), self.variant, task,
                          ctx.epochs(ctx.cfg.trainer.epochs), optim_settings(ctx.cfg))
            stage.info.update(branches=net.n, variant=self.variant, splits=net.splits)
            yield stage
