"""Teacher assistants: Mirzadeh, Farajtabar, Li, Levine, Matsukawa and Ghasemzadeh, "Improved Knowledge
Distillation via Teacher Assistant", AAAI 2020.

When the gap between teacher and student is large, a mid-sized assistant is distilled from the
teacher first and the student is distilled from the assistant (teacher -> assistant -> student).
Both steps use the run's method. The assistant is the ``assistant`` model node, chosen like
``teacher=``/``student=`` (``assistant=<arch>``, plus that architecture's options).

With no ``assistant=`` given, the assistant is picked from the teacher's family, as in the paper's
chains (resnet110 -> resnet56 -> resnet20, wrn_40_2 -> wrn_16_2 -> wrn_16_1): the largest registered
member of the family that is smaller than the teacher and larger than the student (parameters
counted for the run's dataset), preferring the teacher's own line (resnet56 over resnet8x4 for resnet110). A family of one configurable model (mlp, cnn1d) gets the teacher's
architecture at intermediate widths: the geometric mean of teacher's and student's layer widths when
both are that architecture with as many layers, else half the teacher's widths.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator

from omegaconf import DictConfig, OmegaConf

from kdrun.build import build_model
from kdrun.data.base import DataInfo
from kdrun.engine.stage import Stage
from kdrun.errors import KdrunError
from kdrun.models.registry import list_models, model_spec
from kdrun.schemes.context import SchemeContext
from kdrun.schemes.requires import needed

log = logging.getLogger("kdrun")
STAGES = ("teacher", "baseline", "assistant", "distilled")
REQUIRES = {"assistant": ("teacher",), "distilled": ("assistant",)}
ASSISTANT_KEY = "assistant"


def check(cfg) -> None:
    node = cfg.get(ASSISTANT_KEY)
    if node is not None:  # none given: picked from the teacher's family once the data is known
        model_spec(node.get("arch"), f"{ASSISTANT_KEY}.arch")


def _params(node: DictConfig, info: DataInfo, key: str) -> int:
    return sum(p.numel() for p in build_model(node, info, key).parameters())


def _width_key(arch: str) -> str | None:
    """The option holding a list of layer widths (mlp ``hidden``, cnn1d ``channels``), if any."""
    return next((k for k, v in model_spec(arch).defaults.items()
                 if isinstance(v, list) and v and all(isinstance(w, int) for w in v)), None)


def model_node(arch: str) -> DictConfig:
    """The node ``assistant=<arch>`` would give: the architecture with its default options."""
    return OmegaConf.create({"arch": arch, "checkpoint": None, **model_spec(arch).defaults})


def _line(arch: str) -> str:
    """The name without its numbers: members of one line differ only in depth/width (resnet56, resnet110)."""
    return re.sub(r"\d+", "#", arch)


def _narrower(teacher: DictConfig, student: DictConfig, key: str) -> DictConfig:
    widths = list(teacher[key])
    theirs = list(student.get(key) or []) if student.arch == teacher.arch else []
    if len(theirs) == len(widths):
        middle = [max(1, round(math.sqrt(a * b))) for a, b in zip(widths, theirs)]
    else:
        middle = [max(1, w // 2) for w in widths]
    return OmegaConf.merge(teacher, {key: middle, "checkpoint": None})


def pick_assistant(teacher: DictConfig, student: DictConfig, info: DataInfo) -> DictConfig:
    """The default assistant for this pair (see the module docstring); a one-line error when none fits."""
    key = _width_key(teacher.arch)
    if key is not None and len(list_models(family=model_spec(teacher.arch).family)) == 1:
        return OmegaConf.create({k: v for k, v in _narrower(teacher, student, key).items() if k != "lr"})
    family = model_spec(teacher.arch).family
    big, small = _params(teacher, info, "teacher"), _params(student, info, "student")
    sizes = {name: _params(model_node(name), info, ASSISTANT_KEY)
             for name in list_models(family=family, input_kind=info.input_kind)}
    between = [name for name, n in sizes.items() if small < n < big]
    if not between:
        raise KdrunError(f"scheme=assistant: no {family} model lies between teacher={teacher.arch} ({big:,} params) "
                         f"and student={student.arch} ({small:,} params); choose one with assistant=<arch>")
    same_line = [name for name in between if _line(name) == _line(teacher.arch)]  # resnet110 -> resnet56, not 8x4
    return model_node(max(same_line or between, key=sizes.get))


def assistant_node(ctx: SchemeContext) -> DictConfig:
    """``assistant=`` as given, or the one picked for the teacher/student pair (logged and recorded)."""
    node = ctx.cfg.get(ASSISTANT_KEY)
    if node is not None:
        return node
    node = pick_assistant(ctx.cfg.teacher, ctx.cfg.student, ctx.data.info)
    options = {k: v for k, v in OmegaConf.to_container(node).items() if k not in ("arch", "checkpoint")}
    shown = " ".join([f"{ASSISTANT_KEY}={node.arch}", *(f"{ASSISTANT_KEY}.{k}={v}".replace(" ", "")
                                                        for k, v in options.items())])
    log.info("scheme=assistant: no assistant= given; picked %s (between teacher=%s and student=%s)",
             shown, ctx.cfg.teacher.arch, ctx.cfg.student.arch)
    return node


def assistant(ctx: SchemeContext) -> Iterator[Stage]:
    wanted = needed(ctx.cfg.stages, REQUIRES)
    node = assistant_node(ctx) if "assistant" in wanted else None
    if "teacher" in wanted:
        teacher = ctx.model("teacher")
        yield ctx.supervised_stage("teacher", "teacher", "teacher", teacher)
    if "baseline" in wanted:
        yield ctx.supervised_stage("baseline", "baseline", "student", ctx.model("student"))
    if "assistant" in wanted:
        helper = ctx.model(ASSISTANT_KEY, node=node)
        picked = ctx.cfg.get(ASSISTANT_KEY) is None
        for stage in ctx.distill_stages("assistant", "assistant", helper, teacher, node.arch, ctx.cfg.teacher.arch):
            stage.info["teacher_stage"] = "teacher"
            if picked:
                stage.info["picked_assistant"] = OmegaConf.to_container(node, resolve=True)
            yield stage
    if "distilled" in wanted:
        student = ctx.model("student")
        for stage in ctx.distill_stages("distilled", "distilled", student, helper, ctx.cfg.student.arch, node.arch):
            stage.info["teacher_stage"] = "assistant"
            yield stage
