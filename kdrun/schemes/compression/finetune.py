"""The fine-tune the compressed rows share: CE + KD to the teacher's soft targets, with the row's own
weights, lr and schedule (``quant.*`` or ``prune.*``: T, alpha, gamma, lr, milestones, epochs)."""

from __future__ import annotations

from dataclasses import replace

from omegaconf import DictConfig
from torch import nn

from kdrun.tasks.build import optim_settings
from kdrun.models.foreign_nodes import model_label
from kdrun.engine.stage import Stage
from kdrun.methods.base import LossWeights, MethodContext
from kdrun.methods.kd import KD
from kdrun.models.base import KDModel
from kdrun.schemes.context import SchemeContext
from kdrun.tasks.distill import DistillTask


def kd_finetune_stage(ctx: SchemeContext, name: str, role: str, method: str, model: nn.Module, student: KDModel,
                      teacher: nn.Module, node: DictConfig, **stage_options) -> Stage:
    """A stage training ``model`` (a compressed copy of ``student``) on CE + KD to ``teacher``, as ``node`` says."""
    kd = KD(MethodContext(student.feature_info, getattr(teacher, "feature_info", student.feature_info),
                          ctx.data.info, ctx.data.train_targets, model_label(ctx.cfg.student), model_label(ctx.cfg.teacher)))
    task = DistillTask(model, teacher, kd, LossWeights(T=node.T, alpha=node.alpha, gamma=node.gamma, beta=0.0))
    optim = replace(optim_settings(ctx.cfg), lr=node.lr, milestones=tuple(node.milestones), scheduler="multistep",
                    warmup=0.0)  # its own short multi-step schedule, whatever the main stages use
    stage = Stage(name, role, model_label(ctx.cfg.student), method, task, ctx.epochs(node.epochs), optim, **stage_options)
    stage.info["float_reference"] = "distilled"
    return stage
