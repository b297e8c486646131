"""An ensemble of teachers as the teacher: the student learns from their averaged soft targets
(Hinton, Vinyals and Dean, 2015, sec. 2; You, Xu, Xu and Tao, "Learning from Multiple Teacher
Networks", KDD 2017).

Each member (``scheme.teachers``: model nodes like ``teacher=``; member i is seeded with seed + i)
is trained on labels like any teacher, and is shared through the cache. The ``teacher`` row is the
ensemble itself, whose logits ``T * log(mean_i softmax(z_i / T))`` give exactly the averaged soft
targets at the run's temperature, so any method that uses only logits distills from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from kdrun.errors import KdrunError
from kdrun.models.catalog import arch_info
from kdrun.schemes.base import Scheme
from kdrun.schemes.pair import Pair

if TYPE_CHECKING:
    from kdrun.engine.stage import Stage
    from kdrun.schemes.context import SchemeContext

MEMBERS_KEY = "scheme.teachers"


class Ensemble(Scheme):
    name = "ensemble"
    stage_names = ("teacher", "baseline", "distilled")
    requires = {"distilled": ("teacher",)}
    primary = "distilled"

    def __init__(self, teachers: list[dict[str, Any]] = ()) -> None:
        self.teachers = list(teachers)

    def check(self, cfg: DictConfig) -> None:
        super().check(cfg)
        if not self.teachers:
            raise KdrunError("scheme.teachers is empty; give at least two model nodes, e.g. [${teacher}, ${teacher}]")
        for i, node in enumerate(self.teachers):
            arch_info(node.get("arch"), f"{MEMBERS_KEY}[{i}].arch")

    def pairs(self, cfg: DictConfig) -> list[Pair]:
        # the method is built with the first member's features (see stages); it may use only logits
        return [Pair(f"{MEMBERS_KEY}[0]", "student", "distilled", logits_only=True)] \
            if "distilled" in self.wanted(cfg) else []

    def stages(self, ctx: SchemeContext) -> Iterator[Stage]:
        from kdrun.models.ensemble import EnsembleModel

        wanted = self.wanted(ctx.cfg)
        teacher = None
        if "teacher" in wanted:
            nodes = list(ctx.cfg.scheme.teachers)
            members = [ctx.model(f"{MEMBERS_KEY}[{i}]", seed_offset=i, node=n) for i, n in enumerate(nodes)]
            for i, (node, member) in enumerate(zip(nodes, members)):
                yield ctx.supervised_stage(f"teacher{i + 1}", "teacher member", f"{MEMBERS_KEY}[{i}]", member,
                                           node=node, seed_offset=i, loads_checkpoint=True)
            teacher = EnsembleModel(members, T=ctx.cfg.distill.T)
            stage = ctx.eval_stage("teacher", "teacher", "+".join(n.arch for n in nodes), teacher)
            stage.info["members"] = len(members)
            yield stage
        if "baseline" in wanted:
            yield ctx.supervised_stage("baseline", "baseline", "student", ctx.model("student"))
        if "distilled" in wanted:
            student = ctx.model("student")
            method = ctx.method(student, teacher.members[0], teacher_arch="ensemble")
            stage = ctx.distill_stage("distilled", "distilled", student, teacher, method)
            stage.info["teacher_stage"] = "teacher"
            yield stage
