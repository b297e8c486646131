"""The classic scheme: a trained (or loaded) teacher, a label-only baseline, a distilled student --
then what a user deploys from it: the student self-distilled (born-again), quantized to int8 by
quantization-aware distillation or by post-training quantization, and magnitude-pruned. Optionally
the teacher is first corrected on this data (``teacher_corrected``, kdrun/schemes/correction.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from kdrun.errors import KdrunError
from kdrun.schemes.base import Scheme
from kdrun.schemes.pair import Pair
from kdrun.schemes.born_again import check_generations, generations

if TYPE_CHECKING:
    from kdrun.engine.stage import Stage
    from kdrun.schemes.context import SchemeContext


class Offline(Scheme):
    name = "offline"
    stage_names = ("teacher", "teacher_corrected", "baseline", "distilled", "self_distilled", "quantized",
                   "quantized_ptq", "pruned")
    requires = {
        "teacher_corrected": ("teacher",),
        "distilled": ("teacher",),
        "self_distilled": ("baseline",),
        "quantized": ("distilled",),
        "quantized_ptq": ("distilled",),
        "pruned": ("distilled",),
    }
    primary = "distilled"

    def __init__(self, generations: int = 2, correction: dict | None = None) -> None:
        self.generations = generations  # self_distilled = born-again generation N; generation 1 is the baseline
        self.correction = dict(correction or {"epochs": 5, "lr": 0.01})  # the teacher_corrected stage

    def check(self, cfg: DictConfig) -> None:
        super().check(cfg)
        check_generations(self.generations)
        if "teacher_corrected" in cfg.stages:
            epochs, lr = self.correction.get("epochs"), self.correction.get("lr")
            if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
                raise KdrunError(f"scheme.correction.epochs={epochs} must be a positive integer (fine-tuning epochs)")
            if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
                raise KdrunError(f"scheme.correction.lr={lr} must be > 0 (the fine-tuning learning rate)")

    def pairs(self, cfg: DictConfig) -> list[Pair]:
        wanted = self.wanted(cfg)
        return ([Pair("teacher", "student", "distilled")] if "distilled" in wanted else []) + \
               ([Pair("student", "student", "self_distilled")] if "self_distilled" in wanted else [])

    def stages(self, ctx: SchemeContext) -> Iterator[Stage]:
        from kdrun.schemes.compression import dynamic_int8_stage, pruned_stage, ptq_stage, qat_stage
        from kdrun.schemes.correction import correction_stage

        wanted = self.wanted(ctx.cfg)
        teacher = student = None
        if "teacher" in wanted:
            teacher = ctx.model("teacher")
            yield ctx.supervised_stage("teacher", "teacher", "teacher", teacher)
        if "teacher_corrected" in wanted:  # the teacher fine-tuned on this data first; it teaches from here on
            stage = correction_stage(ctx, teacher, int(self.correction["epochs"]), float(self.correction["lr"]))
            yield stage
            teacher = stage.task.eval_model
        if "baseline" in wanted:
            baseline = ctx.model("student")
            yield ctx.init_student(baseline, teacher, ctx.supervised_stage("baseline", "baseline", "student", baseline))
        if "distilled" in wanted:
            student = ctx.model("student")
            for i, stage in enumerate(ctx.distill_stages("distilled", "distilled", student, teacher)):
                if i == 0:  # the first of the method's stages starts from the teacher's layers, if asked
                    ctx.init_student(student, teacher, stage)
                if "teacher_corrected" in wanted:
                    stage.info["teacher_stage"] = "teacher_corrected"
                yield stage
        if "self_distilled" in wanted:  # born-again generations; generation 1 is the baseline
            yield from generations(ctx, baseline, self.generations)
        # The deployment variants start from the distilled student's final weights (trained by now).
        if "quantized" in wanted and ctx.data.info.input_kind in ("tokens", "next_tokens"):  # transformers: dynamic int8 Linear layers
            yield dynamic_int8_stage(ctx, student)
        elif "quantized" in wanted:
            yield qat_stage(ctx, student, teacher)
        if "quantized_ptq" in wanted:
            yield ptq_stage(ctx, student)
        if "pruned" in wanted:
            yield pruned_stage(ctx, student, teacher)
