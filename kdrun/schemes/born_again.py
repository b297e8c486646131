"""Born-again networks: Furlanello, Lipton, Tschannen, Itti and Anandkumar, "Born-Again Neural
Networks", ICML 2018.

Generation 1 is the student architecture trained on labels (the baseline); generation k+1 has the
same architecture and is distilled from generation k with the run's method (the paper uses KD).
Each generation is an ordinary distillation stage; the last one is the ``self_distilled`` row.
The paper's ensemble of all generations (averaged predictions) is an optional evaluation-only row.
There is no teacher: the only pair distilled is student -> student, so ``teacher=`` plays no part.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from kdrun.models.foreign_nodes import model_label
from kdrun.errors import KdrunError
from kdrun.schemes.base import Scheme
from kdrun.schemes.pair import Pair

if TYPE_CHECKING:
    from torch import nn

    from kdrun.engine.stage import Stage
    from kdrun.schemes.context import SchemeContext


class BornAgain(Scheme):
    """The teacher-free scheme: generation 1 (baseline), generations 2..N, and their ensemble."""

    name = "born_again"
    stage_names = ("baseline", "self_distilled", "born_again_ensemble")
    requires = {"self_distilled": ("baseline",), "born_again_ensemble": ("self_distilled",)}
    primary = "self_distilled"

    def __init__(self, generations: int = 3) -> None:
        self.generations = generations

    def check(self, cfg: DictConfig) -> None:
        super().check(cfg)
        check_generations(self.generations)

    def pairs(self, cfg: DictConfig) -> list[Pair]:
        return [Pair("student", "student", "self_distilled")] if "self_distilled" in self.wanted(cfg) else []

    def stages(self, ctx: SchemeContext) -> Iterator[Stage]:
        from kdrun.models.ensemble import EnsembleModel

        wanted = self.wanted(ctx.cfg)
        first = ctx.model("student")
        yield ctx.supervised_stage("baseline", "baseline", "student", first)
        members = [first]
        if "self_distilled" in wanted:
            for stage in generations(ctx, first, self.generations):
                yield stage
                if stage.role == "self-distilled":
                    members.append(stage.task.eval_model)
        if "born_again_ensemble" in wanted:
            stage = ctx.eval_stage("born_again_ensemble", "ensemble", model_label(ctx.cfg.student), EnsembleModel(members))
            stage.info["members"] = len(members)
            yield stage


def check_generations(count: int | None) -> None:
    if count is None or count < 2:
        raise KdrunError(f"scheme.generations={count} must be >= 2 (generation 1 is the baseline)")


def generations(ctx: SchemeContext, first: nn.Module, count: int, first_name: str = "baseline") -> Iterator[Stage]:
    """Stages for generations 2..``count``, each distilled from the previous one.

    The last generation is named ``self_distilled``, the others ``generation<k>``; every stage's
    ``info`` names its generation and the stage of its teacher.
    """
    arch = model_label(ctx.cfg.student)
    teacher, teacher_name = first, first_name
    for k in range(2, count + 1):
        name = "self_distilled" if k == count else f"generation{k}"
        student = ctx.model("student")  # same initialization as the baseline: only the teacher differs
        for stage in ctx.distill_stages(name, "self-distilled", student, teacher, arch, arch):
            stage.info.update(generation=k, teacher_stage=teacher_name)
            yield stage
        teacher, teacher_name = student, name
