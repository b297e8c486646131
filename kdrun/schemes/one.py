"""On-the-fly native ensemble: Lan, Zhu and Gong, "Knowledge Distillation by On-the-Fly Native
Ensemble", NeurIPS 2018 (reference code: github.com/Lan1991Xu/ONE_NeurIPS2018). One stage, no
pre-trained teacher.

The student's last stage is copied into N branches that share its lower layers (the trunk). A gate
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

import copy
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from kdrun.build import build_model, optim_settings
from kdrun.engine.stage import Stage
from kdrun.engine.task import Batch, Progress, StepOutput, Task
from kdrun.errors import KdrunError, choice_error
from kdrun.methods.kd import kd_loss
from kdrun.models.base import KDModel
from kdrun.models.registry import list_models, model_spec
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.requires import needed

STAGES = ("baseline", "one")
VARIANTS = ("one", "collaborative")


def pooled(h: torch.Tensor) -> torch.Tensor:
    """(B, C, ...) -> (B, C): the gate's view of the trunk output."""
    return h.flatten(2).mean(2) if h.dim() > 2 else h


def scale_grad(h: torch.Tensor, factor: float) -> torch.Tensor:
    """``h`` forward; its gradient times ``factor`` backward (Song and Chai's ILR rescaling)."""
    return h * factor + h.detach() * (1.0 - factor)


class Branches(nn.Module):
    """The student with its last stage copied into ``n`` branches, and (for ONE) a gate."""

    def __init__(self, model: KDModel, n: int, gate: bool) -> None:
        super().__init__()
        trunk, head, channels = model.split_last_stage()
        self.model = model  # branch 1: the trunk and the model's own last stage, deployable as is
        self.extra_heads = nn.ModuleList(copy.deepcopy(head) for _ in range(n - 1))
        self.gate = nn.Sequential(nn.Linear(channels, n), nn.BatchNorm1d(n), nn.ReLU()) if gate else None
        object.__setattr__(self, "_parts", (trunk, head))  # views of self.model's modules, not registered twice
        self.n = n

    @property
    def heads(self) -> list[nn.Module]:
        return [self._parts[1], *self.extra_heads]

    def forward_all(self, x: torch.Tensor, trunk_grad: float = 1.0) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every branch's logits and the ensemble's."""
        h = self._parts[0](x)
        shared = h if trunk_grad == 1.0 else scale_grad(h, trunk_grad)
        logits = [head(shared) for head in self.heads]
        if self.gate is None:
            return logits, torch.stack(logits).mean(0)
        g = F.softmax(self.gate(pooled(h)), dim=1)
        return logits, sum(g[:, i : i + 1] * z for i, z in enumerate(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ensemble's logits: what the ``ensemble`` row deploys."""
        return self.forward_all(x)[1]


class OneTask(Task):
    def __init__(self, net: Branches, variant: str, T: float, beta: float) -> None:
        super().__init__()
        self.net, self.variant, self.T, self.beta = net, variant, T, beta

    @property
    def eval_model(self) -> nn.Module:
        return self.net.model

    @property
    def eval_models(self) -> dict[str, nn.Module]:
        return {"branch1": self.net.model, "ensemble": self.net}

    def forward(self, batch: Batch, progress: Progress) -> StepOutput:
        if self.variant == "one":
            logits, z_e = self.net.forward_all(batch.x)
            target = z_e.detach()
            terms = {"ce_ensemble": F.cross_entropy(z_e, batch.y)}
            for i, z in enumerate(logits, 1):
                terms[f"ce_branch{i}"] = F.cross_entropy(z, batch.y)
                terms[f"kl_branch{i}"] = kd_loss(z, target, self.T)
            loss = sum(terms.values())
        else:
            logits, z_e = self.net.forward_all(batch.x, trunk_grad=1.0 / self.net.n)
            probs = [F.softmax(z.detach() / self.T, dim=1) for z in logits]
            terms, loss = {}, logits[0].new_zeros(())
            for i, z in enumerate(logits):
                others = torch.stack([p for j, p in enumerate(probs) if j != i]).mean(0)
                terms[f"ce_head{i + 1}"] = F.cross_entropy(z, batch.y)
                terms[f"kl_head{i + 1}"] = kd_loss(z, torch.log(others.clamp_min(1e-12)) * self.T, self.T)
                loss = loss + (1 - self.beta) * terms[f"ce_head{i + 1}"] + self.beta * terms[f"kl_head{i + 1}"]
        return StepOutput(loss, logits[0], terms)


def check(cfg) -> None:
    s = cfg.scheme
    if s.get("variant") not in VARIANTS:
        raise choice_error("scheme.variant", s.get("variant"), VARIANTS)
    n = s.get("branches")
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise KdrunError(f"scheme.branches={n} must be an integer >= 2 (the paper uses 3)")
    if not isinstance(s.get("T"), (int, float)) or not s.T > 0:
        raise KdrunError(f"scheme.T={s.get('T')} must be > 0 (ONE uses 3, collaborative learning 2)")
    if not isinstance(s.get("beta"), (int, float)) or not 0 <= s.beta <= 1:
        raise KdrunError(f"scheme.beta={s.get('beta')} must be in [0, 1] (collaborative learning's KL weight)")


def branched_student(ctx: SchemeContext) -> Branches:
    model = ctx.model("student")
    if not model.declares_last_stage:
        raise KdrunError(f"scheme=one needs a student that declares its last stage, to branch it; "
                         f"student={ctx.cfg.student.arch} does not; these do: {', '.join(_declaring(ctx))}")
    return Branches(model, int(ctx.cfg.scheme.branches), gate=ctx.cfg.scheme.variant == "one")


def _declaring(ctx: SchemeContext) -> list[str]:
    """The architectures for this dataset that declare their last stage (built to find out: error path only)."""
    names = list_models(input_kind=ctx.data.info.input_kind)
    nodes = {name: OmegaConf.create({"arch": name, **model_spec(name).defaults}) for name in names}
    return [name for name, node in nodes.items() if build_model(node, ctx.data.info, "student").declares_last_stage]


def one(ctx: SchemeContext) -> Iterator[Stage]:
    """A label-only baseline (shared with other runs), then the branched student trained in one stage."""
    wanted = needed(ctx.cfg.stages, {})
    net = branched_student(ctx) if "one" in wanted else None  # refused before anything trains
    if "baseline" in wanted:
        yield ctx.supervised_stage("baseline", "baseline", "student", ctx.model("student"))
    if net is not None:
        s = ctx.cfg.scheme
        task = OneTask(net, s.variant, float(s.T), float(s.beta))
        stage = Stage("one", s.variant, ctx.cfg.student.arch, s.variant, task, ctx.epochs(ctx.cfg.trainer.epochs),
                      optim_settings(ctx.cfg.trainer))
        stage.info.update(branches=net.n, variant=str(s.variant))
        yield stage
