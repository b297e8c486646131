"""Born-again networks: Furlanello, Lipton, Tschannen, Itti and Anandkumar, "Born-Again Neural
Networks", ICML 2018.

Generation 1 is the student architecture trained on labels (the baseline); generation k+1 has the
same architecture and is distilled from generation k with the run's method (the paper uses KD).
Each generation is an ordinary distillation stage; the last one is the ``self_distilled`` row.
The paper's ensemble of all generations (averaged predictions) is an optional evaluation-only row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.engine.stage import Stage
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.requires import needed

STAGES = ("baseline", "self_distilled", "born_again_ensemble")
REQUIRES = {"self_distilled": ("baseline",), "born_again_ensemble": ("self_distilled",)}


class Ensemble(nn.Module):
    """Averages its members' softmax at temperature ``T``; returns ``T * log(mean_i softmax(z_i / T))``.

    Those logits make ``softmax(logits / T)`` exactly the averaged soft targets, so an ensemble is a
    teacher for any method that uses logits (the KD term divides by the same ``T``).
    """

    def __init__(self, members: list[nn.Module], T: float = 1.0) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.T = T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([F.log_softmax(m(x) / self.T, dim=1) for m in self.members])
        return self.T * (torch.logsumexp(log_probs, dim=0) - math.log(len(self.members)))

    def forward_features(self, x: torch.Tensor, preact: bool = False):
        raise TypeError("an ensemble of models has no single set of features; use a method that needs only "
                        "logits (e.g. method=kd)")


def generations(ctx: SchemeContext, first: nn.Module, count: int, first_name: str = "baseline") -> Iterator[Stage]:
    """Stages for generations 2..``count``, each distilled from the previous one.

    The last generation is named ``self_distilled``, the others ``generation<k>``; every stage's
    ``info`` names its generation and the stage of its teacher.
    """
    arch = ctx.cfg.student.arch
    teacher, teacher_name = first, first_name
    for k in range(2, count + 1):
        name = "self_distilled" if k == count else f"generation{k}"
        student = ctx.model("student")  # same initialization as the baseline: only the teacher differs
        for stage in ctx.distill_stages(name, "self-distilled", student, teacher, arch, arch):
            stage.info.update(generation=k, teacher_stage=teacher_name)
            yield stage
        teacher, teacher_name = student, name


def born_again(ctx: SchemeContext) -> Iterator[Stage]:
    """The teacher-free scheme: generation 1 (baseline), generations 2..N, and their ensemble."""
    wanted = needed(ctx.cfg.stages, REQUIRES)
    first = ctx.model("student")
    yield ctx.supervised_stage("baseline", "baseline", "student", first)
    members = [first]
    if "self_distilled" in wanted:
        for stage in generations(ctx, first, ctx.cfg.scheme.generations):
            yield stage
            if stage.role == "self-distilled":
                members.append(stage.task.eval_model)
    if "born_again_ensemble" in wanted:
        stage = ctx.eval_stage("born_again_ensemble", "ensemble", ctx.cfg.student.arch, Ensemble(members))
        stage.info["members"] = len(members)
        yield stage
