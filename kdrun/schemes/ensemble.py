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

from kdrun.build import build_method
from kdrun.engine.stage import Stage
from kdrun.errors import KdrunError
from kdrun.methods.base import MethodContext
from kdrun.models.registry import model_spec
from kdrun.schemes.born_again import Ensemble
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.requires import needed

STAGES = ("teacher", "baseline", "distilled")
REQUIRES = {"distilled": ("teacher",)}


def check(cfg) -> None:
    nodes = cfg.scheme.get("teachers") or []
    if not nodes:
        raise KdrunError("scheme.teachers is empty; give at least two model nodes, e.g. [${teacher}, ${teacher}]")
    for i, node in enumerate(nodes):
        model_spec(node.get("arch"), f"scheme.teachers[{i}].arch")


def check_logit_method(ctx: SchemeContext, members: list) -> None:
    """Fail before any training if the method needs features, which an ensemble does not have."""
    student = ctx.model("student")
    info = MethodContext(student.feature_info, members[0].feature_info, ctx.data.info, ctx.data.train_targets,
                         student_arch=ctx.cfg.student.arch, teacher_arch="ensemble")
    method = build_method(ctx.cfg, info)
    if method.has_terms and ctx.cfg.distill.beta > 0 and (method.needs.features or method.needs.preact):
        raise KdrunError(f"method={ctx.cfg.method.name} needs the teacher's features, but scheme=ensemble "
                         f"gives only averaged soft targets; use a logit method (e.g. method=kd) or distill.beta=0")


def ensemble(ctx: SchemeContext) -> Iterator[Stage]:
    wanted = needed(ctx.cfg.stages, REQUIRES)
    teacher = None
    if "teacher" in wanted:
        nodes = list(ctx.cfg.scheme.teachers)
        members = [ctx.model(f"scheme.teachers[{i}]", seed_offset=i, node=n) for i, n in enumerate(nodes)]
        check_logit_method(ctx, members)
        for i, (node, member) in enumerate(zip(nodes, members)):
            yield ctx.supervised_stage(f"teacher{i + 1}", "teacher member", f"scheme.teachers[{i}]", member,
                                       node=node, seed_offset=i, loads_checkpoint=True)
        teacher = Ensemble(members, T=ctx.cfg.distill.T)
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
