"""The classic scheme: a trained (or loaded) teacher, a label-only baseline, a distilled student --
then what a user deploys from it: the student self-distilled (born-again), quantized to int8 by
quantization-aware distillation or by post-training quantization, and magnitude-pruned. Optionally
the teacher is first corrected on this data (``teacher_corrected``, kdrun/schemes/correction.py)."""

from __future__ import annotations

from collections.abc import Iterator

from kdrun.engine.stage import Stage
from kdrun.schemes import correction
from kdrun.schemes.born_again import generations
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.correction import correction_stage
from kdrun.schemes.pruned import pruned_stage
from kdrun.schemes.quantized import ptq_stage, qat_stage
from kdrun.schemes.requires import needed

STAGES = ("teacher", "teacher_corrected", "baseline", "distilled", "self_distilled", "quantized", "quantized_ptq",
          "pruned")
REQUIRES = {
    "teacher_corrected": ("teacher",),
    "distilled": ("teacher",),
    "self_distilled": ("baseline",),
    "quantized": ("distilled",),
    "quantized_ptq": ("distilled",),
    "pruned": ("distilled",),
}


def check(cfg) -> None:
    if "teacher_corrected" in cfg.stages:
        correction.check(cfg)


def offline(ctx: SchemeContext) -> Iterator[Stage]:
    wanted = needed(ctx.cfg.stages, REQUIRES)
    # The pipeline has built the method for this pair already (SchemeContext.check_pair): a method
    # that cannot serve it failed in seconds, before the teacher trained.
    teacher = student = None
    if "teacher" in wanted:
        teacher = ctx.model("teacher")
        yield ctx.supervised_stage("teacher", "teacher", "teacher", teacher)
    if "teacher_corrected" in wanted:  # the teacher fine-tuned on this data first; it teaches from here on
        stage = correction_stage(ctx, teacher)
        yield stage
        teacher = stage.task.eval_model
    if "baseline" in wanted:
        baseline = ctx.model("student")
        yield ctx.supervised_stage("baseline", "baseline", "student", baseline)
    if "distilled" in wanted:
        student = ctx.model("student")
        for stage in ctx.distill_stages("distilled", "distilled", student, teacher):
            if "teacher_corrected" in wanted:
                stage.info["teacher_stage"] = "teacher_corrected"
            yield stage
    if "self_distilled" in wanted:  # born-again generations; generation 1 is the baseline
        yield from generations(ctx, baseline, ctx.cfg.scheme.generations)
    # The deployment variants start from the distilled student's final weights (trained by now).
    if "quantized" in wanted:
        yield qat_stage(ctx, student, teacher)
    if "quantized_ptq" in wanted:
        yield ptq_stage(ctx, student)
    if "pruned" in wanted:
        yield pruned_stage(ctx, student, teacher)
