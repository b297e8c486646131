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

``scheme.variant=collaborative`` is the multiple-heads form of Song and Chai, "Collaborative
Learning for Deep Neural Networks", NeurIPS 2018: no gate; each head learns from the average of
the other heads' soft targets (detached),

    sum_i (1 - beta) CE(z_i, y) + beta T^2 KL(mean_{j != i} softmax(z_j / T) || softmax(z_i / T)),

with the paper's T = 2, beta = 0.5, and its backpropagation rescaling: the gradient that reaches
the shared trunk is divided by the number of heads (ILR sharing). The ``ensemble`` row then
averages the heads. Here every head branches off at the last stage; the paper's hierarchical trees
(heads splitting at several depths) are not built.

Models declare their last stage by implementing ``split_last_stage`` (CIFAR ResNets, WRNs, mlp,
cnn1d); a student that does not is refused in one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from omegaconf import DictConfig

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

    def __init__(self, variant: str = "one", branches: int = 3, T: float = 3.0, beta: float = 0.5) -> None:
        self.variant, self.branches, self.T, self.beta = variant, branches, T, beta

    def check(self, cfg: DictConfig) -> None:
        super().check(cfg)
        if self.variant not in VARIANTS:
            raise choice_error("scheme.variant", self.variant, VARIANTS)
        n = self.branches
        if not isinstance(n, int) or isinstance(n, bool) or n < 2:
            raise KdrunError(f"scheme.branches={n} must be an integer >= 2 (the paper uses 3)")
        if not isinstance(self.T, (int, float)) or not self.T > 0:
            raise KdrunError(f"scheme.T={self.T} must be > 0 (ONE uses 3, collaborative learning 2)")
        if not isinstance(self.beta, (int, float)) or not 0 <= self.beta <= 1:
            raise KdrunError(f"scheme.beta={self.beta} must be in [0, 1] (collaborative learning's KL weight)")

    def stages(self, ctx: SchemeContext) -> Iterator[Stage]:
        from kdrun.build import optim_settings
        from kdrun.engine.stage import Stage
        from kdrun.schemes.one_task import OneTask, branched_student

        wanted = self.wanted(ctx.cfg)
        net = branched_student(ctx, self.branches, self.variant == "one") if "one" in wanted else None
        if "baseline" in wanted:  # the refusal above comes before anything trains
            yield ctx.supervised_stage("baseline", "baseline", "student", ctx.model("student"))
        if net is not None:
            task = OneTask(net, self.variant, float(self.T), float(self.beta))
            stage = Stage("one", self.variant, ctx.cfg.student.arch, self.variant, task,
                          ctx.epochs(ctx.cfg.trainer.epochs), optim_settings(ctx.cfg.trainer))
            stage.info.update(branches=net.n, variant=self.variant)
            yield stage
