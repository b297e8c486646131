"""Teacher assistants: Mirzadeh, Farajtabar, Li, Levine, Matsukawa and Ghasemzadeh, "Improved Knowledge
Distillation via Teacher Assistant", AAAI 2020.

When the gap between teacher and student is large, a mid-sized assistant is distilled from the
teacher first and the student is distilled from the assistant (teacher -> assistant -> student).
Both steps use the run's method, so both pairs are checked before the teacher trains. The assistant
is the ``assistant`` model node, chosen like ``teacher=``/``student=`` (``assistant=<arch>``, plus
that architecture's options).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from kdrun.errors import KdrunError
from kdrun.models.catalog import arch_info
from kdrun.schemes.base import Pair, Scheme

if TYPE_CHECKING:
    from kdrun.engine.stage import Stage
    from kdrun.schemes.context import SchemeContext

ASSISTANT_KEY = "assistant"


class Assistant(Scheme):
    name = "assistant"
    stage_names = ("teacher", "baseline", "assistant", "distilled")
    requires = {"assistant": ("teacher",), "distilled": ("assistant",)}
    primary = "distilled"

    def check(self, cfg: DictConfig) -> None:
        super().check(cfg)
        node = cfg.get(ASSISTANT_KEY)
        if node is None or node.get("arch") is None:
            raise KdrunError(f"{ASSISTANT_KEY} is not set; choose an architecture, e.g. {ASSISTANT_KEY}=cnn1d")
        arch_info(node.arch, f"{ASSISTANT_KEY}.arch")

    def pairs(self, cfg: DictConfig) -> list[Pair]:
        wanted = self.wanted(cfg)
        return ([Pair("teacher", ASSISTANT_KEY, "assistant")] if "assistant" in wanted else []) + \
               ([Pair(ASSISTANT_KEY, "student", "distilled")] if "distilled" in wanted else [])

    def stages(self, ctx: SchemeContext) -> Iterator[Stage]:
        wanted = self.wanted(ctx.cfg)
        node = ctx.cfg[ASSISTANT_KEY]
        if "teacher" in wanted:
            teacher = ctx.model("teacher")
            yield ctx.supervised_stage("teacher", "teacher", "teacher", teacher)
        if "baseline" in wanted:
            yield ctx.supervised_stage("baseline", "baseline", "student", ctx.model("student"))
        if "assistant" in wanted:
            helper = ctx.model(ASSISTANT_KEY)
            for stage in ctx.distill_stages("assistant", "assistant", helper, teacher, node.arch,
                                            ctx.cfg.teacher.arch):
                stage.info["teacher_stage"] = "teacher"
                yield stage
        if "distilled" in wanted:
            student = ctx.model("student")
            for stage in ctx.distill_stages("distilled", "distilled", student, helper, ctx.cfg.student.arch,
                                            node.arch):
                stage.info["teacher_stage"] = "assistant"
                yield stage
