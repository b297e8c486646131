"""The classic scheme: a trained (or loaded) teacher, a label-only baseline, a distilled student --
then what a user deploys from it: the student self-distilled (born-again), quantized to int8 by
quantization-aware distillation or by post-training quantization, and magnitude-pruned."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from kdrun.schemes.base import Pair, Scheme
from kdrun.schemes.born_again import check_generations, generations

if TYPE_CHECKING:
    from kdrun.engine.stage import Stage
    from kdrun.schemes.context import SchemeContext


class Offline(Scheme):
    name = "offline"
    stage_names = ("teacher", "baseline", "distilled", "self_distilled", "quantized", "quantized_ptq", "pruned")
    requires = {
        "distilled": ("teacher",),
        "self_distilled": ("baseline",),
        "quantized": ("distilled",),
        "quantized_ptq": ("distilled",),
        "pruned": ("distilled",),
    }
    primary = "distilled"

    def __init__(self, generations: int = 2) -> None:
        self.generations = generations  # self_distilled = born-again generation N; generation 1 is the baseline

    def check(self, cfg: DictConfig) -> None:
        super().check(cfg)
        check_generations(self.generations)

    def pairs(self, cfg: DictConfig) -> list[Pair]:
        wanted = self.wanted(cfg)
        return ([Pair("teacher", "student", "distilled")] if "distilled" in wanted else []) + \
               ([Pair("student", "student", "self_distilled")] if "self_distilled" in wanted else [])

    def stages(self, ctx: SchemeContext) -> Iterator[Stage]:
        from kdrun.schemes.compression import pruned_stage, ptq_stage, qat_stage

        wanted = self.wanted(ctx.cfg)
        teacher = student = None
        if "teacher" in wanted:
            teacher = ctx.model("teacher")
            yield ctx.supervised_stage("teacher", "teacher", "teacher", teacher)
        if "baseline" in wanted:
            baseline = ctx.model("student")
            yield ctx.supervised_stage("baseline", "baseline", "student", baseline)
        if "distilled" in wanted:
            student = ctx.model("student")
            yield from ctx.distill_stages("distilled", "distilled", student, teacher)
        if "self_distilled" in wanted:  # born-again generations; generation 1 is the baseline
            yield from generations(ctx, baseline, self.generations)
        # The deployment variants start from the distilled student's final weights (trained by now).
        if "quantized" in wanted:
            yield qat_stage(ctx, student, teacher)
        if "quantized_ptq" in wanted:
            yield ptq_stage(ctx, student)
        if "pruned" in wanted:
            yield pruned_stage(ctx, student, teacher)
