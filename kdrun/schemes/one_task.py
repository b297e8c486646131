"""ONE's branched student and its task, and collaborative learning's trees of heads (kdrun/schemes/one.py has the
scheme and its references)."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from kdrun.tasks.build import build_model
from kdrun.models.foreign_nodes import model_label
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
    """The student branched into a tree of heads, and (for ONE) a gate.

    ``splits`` gives the fan-out at each split depth, deepest last, at the model's last ``len(splits)``
    stage boundaries (``split_stages``): ``[3]`` copies the last stage into 3 branches (ONE; collaborative
    learning's simple sharing); ``[2, 2]`` on a 3-stage ResNet splits after stage 1 into 2 and each again
    after stage 2, 4 heads (collaborative learning's hierarchical sharing). Head 1 follows the model's own
    modules at every level, so it is the student architecture itself, deployable as is."""

    def __init__(self, model: KDModel, splits: list[int] | int, gate: bool,
                 donors: list[KDModel] | None = None) -> None:
        """``donors``: n - 1 more models of the student's architecture, initialized apart: node j + 1 of every
        level comes from donor j (the reference code initializes every branch on its own: identical copies
        would get identical gradients and never differ without a gate). Without donors, copies of the
        model's own parts with their parameters reset."""
        super().__init__()
        self.splits = [splits] if isinstance(splits, int) else [int(f) for f in splits]
        parts, channels = model.split_stages()
        first = len(parts) - len(self.splits)  # parts[:first] are the trunk every head shares
        if first < 1:
            raise KdrunError(f"{len(self.splits)} split depths need a model with as many stage boundaries; "
                             f"this one has {len(parts) - 1}")
        own = parts[first:]  # the model's own part at each level: head 1's path
        self.model = model
        extra = []
        for level, own_part in enumerate(own):
            count = math.prod(self.splits[: level + 1]) - 1
            extra.append([_part(own_part, donors, j, first + level) for j in range(count)])
        self.extra_heads = nn.ModuleList(extra[-1])
        self.extra_stages = nn.ModuleList(nn.ModuleList(level) for level in extra[:-1])  # empty with one split
        self.n = math.prod(self.splits)
        self.gate = None
        if gate:
            self.gate = nn.Sequential(nn.Linear(channels[first - 1], self.n), nn.BatchNorm1d(self.n), nn.ReLU())
        trunk = nn.Sequential(*parts[:first])
        object.__setattr__(self, "_parts", (trunk, own))  # views of self.model's modules, not registered twice

    @property
    def heads(self) -> list[nn.Module]:
        return [self._parts[1][-1], *self.extra_heads]

    def level(self, i: int) -> list[nn.Module]:
        """The parts at split depth ``i``: node k's children are nodes k * fan-out .. (k + 1) * fan-out - 1."""
        extra = self.extra_heads if i == len(self.splits) - 1 else self.extra_stages[i]
        return [self._parts[1][i], *extra]

    def forward_all(self, x: torch.Tensor, rescale: bool = False) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every head's logits and the ensemble's. ``rescale``: at each split the gradient its children send
        back is divided by their number (Song and Chai's backpropagation rescaling)."""
        h = self._parts[0](x)
        nodes = [h]
        for i, fan in enumerate(self.splits):
            parts = self.level(i)
            nodes = [parts[k * fan + c](scale_grad(node, 1.0 / fan) if rescale else node)
                     for k, node in enumerate(nodes) for c in range(fan)]
        if self.gate is None:
            return nodes, torch.stack(nodes).mean(0)
        g = F.softmax(self.gate(pooled(h)), dim=1)
        return nodes, sum(g[:, i : i + 1] * z for i, z in enumerate(nodes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ensemble's logits: what the ``ensemble`` row deploys."""
        return self.forward_all(x)[1]


def _part(own: nn.Module, donors: list[KDModel] | None, j: int, index: int) -> nn.Module:
    """Node j + 1's part at stage boundary ``index``: donor j's, or a copy of ``own`` with reset parameters."""
    if donors is not None:
        return donors[j].split_stages()[0][index]
    part = copy.deepcopy(own)
    for m in part.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return part


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
            logits, z_e = self.net.forward_all(batch.x, rescale=True)
            total, n = torch.stack(logits).detach().sum(0), len(logits)
            terms, loss = {}, logits[0].new_zeros(())
            for i, z in enumerate(logits, 1):
                consensus = (total - z.detach()) / (n - 1)  # the other heads' mean logits, a constant target
                terms[f"ce_head{i}"] = F.cross_entropy(z, batch.y)
                terms[f"kl_head{i}"] = kd_loss(z, consensus, self.T)
                loss = loss + (1 - self.beta) * terms[f"ce_head{i}"] + self.beta * terms[f"kl_head{i}"]
        return StepOutput(loss, logits[0], terms)


def branched_student(ctx: SchemeContext, splits: list[int], gate: bool) -> Branches:
    """The student (the baseline's initial weights) branched by ``splits``; node j + 1 of every level comes from
    the student architecture initialized with seed + j + 1. Refuses, in one line, a student that does not
    declare its stages or has fewer stage boundaries than ``splits`` has depths."""
    model = ctx.model("student")
    arch = model_label(ctx.cfg.student)
    if not model.declares_stages:
        raise KdrunError(f"scheme=one needs a student that declares its stages, to branch it; "
                         f"student={arch} does not; these do: {', '.join(_declaring(ctx))}")
    boundaries = len(model.split_stages()[0]) - 1
    if len(splits) > boundaries:
        raise KdrunError(f"scheme.splits={list(splits)} branches at {len(splits)} depths; student={arch} can be "
                         f"split at {boundaries} (give at most {boundaries} fan-outs, or a deeper student)")
    donors = [ctx.model("student", seed_offset=i) for i in range(1, math.prod(splits))]
    return Branches(model, list(splits), gate=gate, donors=donors)


def _declaring(ctx: SchemeContext) -> list[str]:
    """The architectures for this dataset that declare their last stage (built to find out: error path only)."""
    names = list_models(input_kind=ctx.data.info.input_kind)
    nodes = {name: OmegaConf.create({"arch": name, **model_spec(name).defaults}) for name in names}
    return [name for name, node in nodes.items() if build_model(node, ctx.data.info, "student").declares_stages]
