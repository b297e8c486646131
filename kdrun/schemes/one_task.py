"""ONE's branched student and its task, and collaborative learning's heads (kdrun/schemes/one.py has the
scheme and its references)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from kdrun.build import build_model
from kdrun.engine.task import Batch, Progress, StepOutput, Task
from kdrun.errors import KdrunError
from kdrun.methods.kd import kd_loss
from kdrun.models.base import KDModel
from kdrun.models.registry import list_models, model_spec
from kdrun.schemes.context import SchemeContext


def pooled(h: torch.Tensor) -> torch.Tensor:
    """(B, C, ...) -> (B, C): the gate's view of the trunk output."""
    return h.flatten(2).mean(2) if h.dim() > 2 else h


def scale_grad(h: torch.Tensor, factor: float) -> torch.Tensor:
    """``h`` forward; its gradient times ``factor`` backward (Song and Chai's ILR rescaling)."""
    return h * factor + h.detach() * (1.0 - factor)


class Branches(nn.Module):
    """The student with its last stage copied into ``n`` branches, and (for ONE) a gate."""

    def __init__(self, model: KDModel, n: int, gate: bool, donors: list[KDModel] | None = None) -> None:
        """``donors``: n - 1 more models of the student's architecture, initialized apart, whose last stages
        become branches 2..n (the reference code initializes every branch on its own: identical copies
        would get identical gradients and never differ without a gate). Without donors, copies of the last
        stage with their parameters reset."""
        super().__init__()
        trunk, head, channels = model.split_last_stage()
        self.model = model  # branch 1: the trunk and the model's own last stage, deployable as is
        if donors is None:
            donors_heads = [copy.deepcopy(head) for _ in range(n - 1)]
            for h in donors_heads:
                for m in h.modules():
                    if hasattr(m, "reset_parameters"):
                        m.reset_parameters()
        else:
            donors_heads = [d.split_last_stage()[1] for d in donors]
        self.extra_heads = nn.ModuleList(donors_heads)
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


def branched_student(ctx: SchemeContext, branches: int, gate: bool) -> Branches:
    model = ctx.model("student")  # the baseline's initial weights; branch i starts from seed + i - 1
    if not model.declares_last_stage:
        raise KdrunError(f"scheme=one needs a student that declares its last stage, to branch it; "
                         f"student={ctx.cfg.student.arch} does not; these do: {', '.join(_declaring(ctx))}")
    donors = [ctx.model("student", seed_offset=i) for i in range(1, int(branches))]
    return Branches(model, int(branches), gate=gate, donors=donors)


def _declaring(ctx: SchemeContext) -> list[str]:
    """The architectures for this dataset that declare their last stage (built to find out: error path only)."""
    names = list_models(input_kind=ctx.data.info.input_kind)
    nodes = {name: OmegaConf.create({"arch": name, **model_spec(name).defaults}) for name in names}
    return [name for name, node in nodes.items() if build_model(node, ctx.data.info, "student").declares_last_stage]
