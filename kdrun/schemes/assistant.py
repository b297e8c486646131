"""Teacher assistants: Mirzadeh, Farajtabar, Li, Levine, Matsukawa and Ghasemzadeh, "Improved Knowledge
Distillation via Teacher Assistant", AAAI 2020.

When the gap between teacher and student is large, a mid-sized assistant is distilled from the
teacher first and the student is distilled from the assistant (teacher -> assistant -> student).
Both steps use the run's method, so both pairs are checked before the teacher trains. The assistant
is the ``assistant`` model node, chosen like ``teacher=``/``student=`` (``assistant=<arch>``, plus
that architecture's options).

With no ``assistant=`` given, the assistant is picked from the teacher's family, as in the paper's
chains (resnet110 -> resnet56 -> resnet20, wrn_40_2 -> wrn_16_2 -> wrn_16_1): the largest registered
member of the family that is smaller than the teacher and larger than the student (parameters
counted for the run's dataset), preferring the teacher's own line (resnet56 over resnet8x4 for resnet110). A family of one configurable model (mlp, cnn1d) gets the teacher's
architecture at intermediate widths: the geometric mean of teacher's and student's layer widths when
both are that architecture with as many layers, else half the teacher's widths. (kdrun/schemes/assistant_pick.py; that pair is checked when its stage is built).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from kdrun.models.foreign_nodes import model_label
from kdrun.models.catalog import arch_info
from kdrun.schemes.base import Scheme
from kdrun.schemes.pair import Pair

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
        if node is not None:  # none given: picked from the teacher's family once the data is known
            arch_info(node.get("arch"), f"{ASSISTANT_KEY}.arch")

    def pairs(self, cfg: DictConfig) -> list[Pair]:
        wanted = self.wanted(cfg)
        # a picked assistant is checked when its stage is built (it is known once the data is)
        middle = ASSISTANT_KEY if cfg.get(ASSISTANT_KEY) is not None else None
        return ([Pair("teacher", middle, "assistant")] if "assistant" in wanted and middle else []) + \
               ([Pair(middle, "student", "distilled")] if "distilled" in wanted and middle else [])

    def stages(self, ctx: SchemeContext) -> Iterator[Stage]:
        from kdrun.schemes.assistant_pick import assistant_node

        wanted = self.wanted(ctx.cfg)
        node = assistant_node(ctx) if "assistant" in wanted else None
        if "teacher" in wanted:
            teacher = ctx.model("teacher")
            yield ctx.supervised_stage("teacher", "teacher", "teacher", teacher)
        if "baseline" in wanted:
            yield ctx.supervised_stage("baseline", "baseline", "student", ctx.model("student"))
        if "assistant" in wanted:
            helper = ctx.model(ASSISTANT_KEY, node=node)
            picked = ctx.cfg.get(ASSISTANT_KEY) is None
            for stage in ctx.distill_stages("assistant", "assistant", helper, teacher, model_label(node),
                                            model_label(ctx.cfg.teacher)):
                stage.info["teacher_stage"] = "teacher"
                if picked:
                    stage.info["picked_assistant"] = OmegaConf.to_container(node, resolve=True)
                yield stage
        if "distilled" in wanted:
            student = ctx.model("student")
            for stage in ctx.distill_stages("distilled", "distilled", student, helper, model_label(ctx.cfg.student),
                                            model_label(node)):
                stage.info["teacher_stage"] = "assistant"
                yield stage
