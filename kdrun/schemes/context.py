"""What schemes build stages from: the config, the data, and small factories for models and tasks."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from omegaconf import DictConfig

from kdrun.build import build_method, build_model, loss_weights, optim_settings, supervised_cache_key
from kdrun.data.base import DataBundle
from kdrun.methods.base import Method, MethodContext
from kdrun.models.base import KDModel
from kdrun.schemes.distill_task import DistillTask, InitTask
from kdrun.schemes.stage import Stage
from kdrun.schemes.task import SupervisedTask


@dataclass
class SchemeContext:
    cfg: DictConfig
    data: DataBundle
    stage_outcomes: dict = field(default_factory=dict)  # filled by the pipeline as stages finish

    def check_pair(self) -> None:
        """Build teacher, student and method once before any stage runs: incompatible architectures,
        datasets and methods fail here, in one line, before the first batch."""
        teacher, student = self.model("teacher"), self.model("student")
        self.method(student, teacher)

    def model(self, key: str, seed_offset: int = 0) -> KDModel:
        """A fresh ``teacher``/``student`` model; same seed -> same initial weights (fair baselines)."""
        torch.manual_seed(self.cfg.seed + seed_offset)
        return build_model(self.cfg[key], self.data.info, key)

    def epochs(self, wanted: int) -> int:
        """``wanted`` capped by ``trainer.max_epochs`` (debug runs shrink every stage, init stages included)."""
        cap = self.cfg.trainer.get("max_epochs")
        return wanted if cap is None else min(wanted, cap)

    def method(self, student: KDModel, teacher: KDModel) -> Method:
        """Build the method; schemes call this before any stage trains, so an incompatible pair fails early."""
        ctx = MethodContext(student.feature_info, teacher.feature_info, self.data.info, self.data.train_targets,
                            student_arch=self.cfg.student.arch, teacher_arch=self.cfg.teacher.arch,
                            weights=loss_weights(self.cfg))
        return build_method(self.cfg, ctx)

    def supervised_stage(self, name: str, role: str, key: str, model: KDModel) -> Stage:
        """Cross-entropy training of ``model`` (built from config node ``key``), shareable between runs."""
        node = self.cfg[key]
        stage = Stage(name, role, node.arch, "ce", SupervisedTask(model), self.epochs(self.cfg.trainer.epochs),
                      optim_settings(self.cfg.trainer),
                      cache_key=supervised_cache_key(self.cfg, node, self.data.info.name))
        if key == "teacher" and node.get("checkpoint"):
            stage.info["checkpoint"] = node.checkpoint
            stage.cache_key = None
        return stage

    def distill_stage(self, name: str, role: str, student: KDModel, teacher: KDModel, method: Method,
                      epochs: int | None = None) -> Stage:
        task = DistillTask(student, teacher, method, loss_weights(self.cfg))
        return Stage(name, role, self.cfg.student.arch, self.cfg.method.name, task,
                     self.epochs(epochs or self.cfg.trainer.epochs), optim_settings(self.cfg.trainer),
                     needs_index=method.needs.sample_index)

    def init_stage(self, name: str, student: KDModel, teacher: KDModel, method: Method) -> Stage:
        """The method's initialization phase as an ordinary stage (own progress, logs, checkpoints).

        Its learning rate is constant (no milestones), as in RepDistiller's ``helper/pretrain.py``.
        """
        trainer = optim_settings(self.cfg.trainer)
        optim = replace(trainer, lr=method.init_lr or trainer.lr, milestones=())
        return Stage(name, "init", self.cfg.student.arch, f"{self.cfg.method.name}_init",
                     InitTask(student, teacher, method), self.epochs(method.init_epochs), optim,
                     needs_index=method.needs.sample_index, in_table=False)
