"""The default teacher assistant of scheme=assistant (Mirzadeh et al., AAAI 2020): with no ``assistant=`` given,
a model of the teacher's family between teacher and student in size (see kdrun/schemes/assistant.py)."""

from __future__ import annotations

import logging
import math
import re

from omegaconf import DictConfig, OmegaConf

from kdrun.tasks.build import build_model
from kdrun.data.base import DataInfo
from kdrun.models.foreign_nodes import model_label
from kdrun.errors import KdrunError
from kdrun.models.registry import list_models, model_spec
from kdrun.schemes.context import SchemeContext

log = logging.getLogger("kdrun")
ASSISTANT_KEY = "assistant"


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


def _between(a: int, b: int) -> int:
    return max(1, round(math.sqrt(a * b)))


def _narrower(teacher: DictConfig, student: DictConfig, key: str) -> DictConfig:
    """The teacher's architecture with widths between the two (half the teacher's against another family),
    and any other whole-number option the two set apart (cnn1d's ``depth``) between theirs as well."""
    widths = list(teacher[key])
    same_arch = student.arch == teacher.arch
    theirs = list(student.get(key) or []) if same_arch else []
    if len(theirs) == len(widths):
        middle = [_between(a, b) for a, b in zip(widths, theirs)]
    else:
        middle = [max(1, w // 2) for w in widths]
    counts = {k: _between(teacher[k], student[k]) for k, v in model_spec(teacher.arch).defaults.items()
              if same_arch and type(v) is int and teacher.get(k) != student.get(k)}
    return OmegaConf.merge(teacher, {key: middle, **counts, "checkpoint": None})


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
             shown, model_label(ctx.cfg.teacher), model_label(ctx.cfg.student))
    return node
