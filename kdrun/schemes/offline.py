"""The classic scheme: a trained (or loaded) teacher, a label-only baseline, a distilled student."""

from __future__ import annotations

from collections.abc import Iterator

from kdrun.schemes.context import SchemeContext
from kdrun.schemes.stage import Stage

STAGES = ("teacher", "baseline", "distilled")


def offline(ctx: SchemeContext) -> Iterator[Stage]:
    wanted = set(ctx.cfg.stages)
    teacher = student = method = None
    if "teacher" in wanted or "distilled" in wanted:
        teacher = ctx.model("teacher")
    if "distilled" in wanted:
        # Built before anything trains: a method that cannot serve this pair fails in seconds, not after the teacher.
        student = ctx.model("student")
        method = ctx.method(student, teacher)
    if teacher is not None:
        yield ctx.supervised_stage("teacher", "teacher", "teacher", teacher)
    if "baseline" in wanted:
        yield ctx.supervised_stage("baseline", "baseline", "student", ctx.model("student"))
    if method is not None:
        if method.init_epochs > 0:
            yield ctx.init_stage(f"{ctx.cfg.method.name}_init", student, teacher, method)
        yield ctx.distill_stage("distilled", "distilled", student, teacher, method)
