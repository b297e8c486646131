"""What schemes build stages from: the config, the data, and small factories for models and tasks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
from omegaconf import DictConfig, OmegaConf

from kdrun.benchmarks.teachers import teacher_checkpoint
from kdrun.tasks.build import (build_method, build_mix, build_model, loss_weights, optim_settings, resolve_device,
                         supervised_cache_key, teacher_outputs_key)
from kdrun.data.base import DataBundle
from kdrun.distributed.state import rank, world_size
from kdrun.models.foreign_nodes import model_label
from kdrun.engine.stage import Stage
from kdrun.engine.task import SupervisedTask
from kdrun.engine.teacher_outputs import TeacherLogits, weights_digest
from kdrun.errors import KdrunError
from kdrun.methods.base import Method, MethodContext
from kdrun.models.base import KDModel
from kdrun.schemes.pair import Pair
from kdrun.tasks.distill import DistillTask, InitTask
from kdrun.tasks.select import SampleSelection, refuse_features, selection_from

log = logging.getLogger("kdrun")


@dataclass
class SchemeContext:
    cfg: DictConfig
    data: DataBundle

    def check_pairs(self, pairs: list[Pair], scheme: str, on_meta: bool = False) -> None:
        """Build every teacher -> student pair the scheme will distil, and the method on it, before any stage
        runs: incompatible architectures, datasets and methods fail here, in one line, before the first batch.
        ``on_meta`` builds the models without memory or initialization (the method only reads their static
        feature info)."""
        for pair in pairs:
            with torch.device("meta") if on_meta else nullcontext():
                teacher = self.model(pair.teacher, node=self.node(pair.teacher))
                student = self.model(pair.student, node=self.node(pair.student))
            init = self.node(pair.student).get("init_from_teacher")
            if init and not pair.logits_only:
                from kdrun.models.text_init import check_init

                check_init(student, teacher, OmegaConf.to_container(init) if not isinstance(init, str) else init)
            teacher_arch = "ensemble" if pair.logits_only else model_label(self.node(pair.teacher))
            method = self.method(student, teacher, model_label(self.node(pair.student)), teacher_arch)
            uses_features = method.has_terms and self.cfg.distill.beta > 0 and (method.needs.features or
                                                                                 method.needs.preact)
            for role, model in (("teacher", teacher), ("student", student)):
                if method.needs.preact and not getattr(model, "gives_preact", True):
                    raise KdrunError(f"method={self.cfg.method.name} needs pre-activation features, which "
                                     f"{role}={model_label(self.node(getattr(pair, role)))} (a foreign model) does "
                                     f"not expose; use a zoo model there or another feature method (at, fitnet)")
            if pair.logits_only and uses_features:
                raise KdrunError(f"method={self.cfg.method.name} needs the teacher's features, but scheme={scheme} "
                                 f"gives only averaged soft targets; use a logit method (e.g. method=kd) or "
                                 f"distill.beta=0")

    def node(self, key: str) -> DictConfig:
        """The model node at ``key`` (``teacher``, ``assistant``, ``scheme.teachers[0]``, ...)."""
        return OmegaConf.select(self.cfg, key)

    def model(self, key: str, seed_offset: int = 0, node: DictConfig | None = None) -> KDModel:
        """A fresh model from config node ``key`` (or ``node``, reported as ``key``); same seed -> same
        initial weights (fair baselines)."""
        torch.manual_seed(self.cfg.seed + seed_offset)
        return build_model(self.cfg[key] if node is None else node, self.data.info, key)

    def init_student(self, student: KDModel, teacher: KDModel | None, stage: Stage) -> Stage:
        """DistilBERT's initialisation of ``student`` from ``teacher`` when ``student.init_from_teacher`` asks for it
        (kdrun/models/text_init.py); such a stage depends on the teacher's weights, so it is never shared."""
        spec = self.cfg.student.get("init_from_teacher")
        if not spec:
            return stage
        if teacher is None:
            raise KdrunError("student.init_from_teacher needs the teacher: add teacher to stages")
        from kdrun.models.text_init import init_from_teacher

        spec = spec if isinstance(spec, str) else OmegaConf.to_container(spec)
        stage.info["init_from_teacher"] = init_from_teacher(student, teacher, spec)
        stage.cache_key = None
        return stage

    def epochs(self, wanted: int) -> int:
        """``wanted`` capped by ``trainer.max_epochs`` (debug runs shrink every stage, init stages included)."""
        cap = self.cfg.trainer.get("max_epochs")
        return wanted if cap is None else min(wanted, cap)

    def method(self, student: KDModel, teacher: KDModel, student_arch: str | None = None,
               teacher_arch: str | None = None) -> Method:
        """Build the method for this pair (``pipeline`` calls :meth:`check_pairs` first, so a pair the
        method cannot serve fails before anything trains)."""
        ctx = MethodContext(student.feature_info, teacher.feature_info, self.data.info, self.data.train_targets,
                            student_arch=student_arch or model_label(self.cfg.student),
                            teacher_arch=teacher_arch or model_label(self.cfg.teacher), weights=loss_weights(self.cfg))
        method = build_method(self.cfg, ctx)
        if self.selection() is not None and method.has_terms and self.cfg.distill.beta > 0:
            needs = method.needs
            refuse_features(self.cfg.method.name, needs.features or needs.preact or needs.sample_index)
        return method

    def selection(self) -> SampleSelection | None:
        """``distill.select``: the samples the distillation terms use (None: all of them)."""
        node = self.cfg.distill.get("select")
        return selection_from(None if node is None else OmegaConf.to_container(node, resolve=True))

    def supervised_stage(self, name: str, role: str, key: str, model: KDModel, node: DictConfig | None = None,
                         seed_offset: int = 0, loads_checkpoint: bool | None = None) -> Stage:
        """Cross-entropy training of ``model`` (built from config node ``key``), shareable between runs.
        Teachers (``loads_checkpoint``) are loaded from a checkpoint instead when one is given
        (``<node>.checkpoint``; for the run's teacher also ``teachers_dir``)."""
        own_node = node is None
        node = self.cfg[key] if own_node else node
        lr = node.get("lr")  # None: trainer.lr (optim_settings)
        stage = Stage(name, role, model_label(node), "ce", SupervisedTask(model), self.epochs(self.cfg.trainer.epochs),
                      optim_settings(self.cfg, lr),
                      cache_key=supervised_cache_key(self.cfg, node, self.data.info.name, lr,
                                                     seed=self.cfg.seed + seed_offset,
                                                     data_fingerprint=self.data.fingerprint))
        stage.info.update(getattr(model, "provenance", {}))  # a Hugging Face model's hub revision
        loads = key == "teacher" if loads_checkpoint is None else loads_checkpoint
        checkpoint = None
        if loads:
            checkpoint = teacher_checkpoint(self.cfg) if own_node and key == "teacher" else node.get("checkpoint")
        if checkpoint:
            stage.info["checkpoint"] = checkpoint
            stage.cache_key = None
        return stage

    def distill_stage(self, name: str, role: str, student: KDModel, teacher: KDModel, method: Method,
                      epochs: int | None = None, arch: str | None = None) -> Stage:
        """Distillation of ``student`` from ``teacher``; distillation terms on the transfer set when one is set."""
        task = DistillTask(student, teacher, method, loss_weights(self.cfg), mix=build_mix(self.cfg.distill),
                           select=self.selection())
        uses_transfer = self.data.transfer is not None and task.uses_distill_view
        if self.data.transfer is not None and task.labeled_method:
            log.info("method=%s needs dataset indices: its terms use labeled batches; the transfer set feeds the KD "
                     "term only (%s)", self.cfg.method.name, "in use" if uses_transfer else "unused: distill.alpha=0")
        stage = Stage(name, role, arch or model_label(self.cfg.student), self.cfg.method.name, task,
                      self.epochs(epochs or self.cfg.trainer.epochs), optim_settings(self.cfg),
                      needs_index=method.needs.sample_index, uses_transfer=uses_transfer)
        task.outputs = self.teacher_outputs(task, student)
        if task.outputs is not None:
            stage.info["teacher_outputs"] = task.outputs.sources  # epochs replayed / recorded / computed
        return stage

    def teacher_outputs(self, task: DistillTask, student: KDModel) -> TeacherLogits | None:
        """Replayed teacher logits for ``task`` (``distill.teacher_outputs``), or None: the teacher runs."""
        d = self.cfg.distill
        mode = d.get("teacher_outputs", "compute")
        if mode == "compute" or not task.use_teacher:
            return None
        if self.data.info.input_kind == "next_tokens":  # (vocabulary x length) floats per sample: too big to keep
            log.info("distill.teacher_outputs=%s: next-token logits are not recorded (vocabulary x sequence length "
                     "per sample), so the teacher runs", mode)
            return None
        if not task.replayable:
            log.info("distill.teacher_outputs=%s: method=%s needs the teacher's features, so the teacher runs",
                     mode, self.cfg.method.name)
            return None
        parts = teacher_outputs_key(self.cfg, self.data.info, resolve_device(self.cfg.device), (rank(), world_size()))
        if d.get("mix"):  # the mix draws from the generator a student's dropout also draws from
            parts["student"] = weights_digest(student)
        return TeacherLogits(task.teacher, task.teacher.model, f"{self.cfg.paths.cache}/teacher_outputs", parts,
                             mode, d.get("teacher_outputs_precision", "fp32"))

    def init_stage(self, name: str, student: KDModel, teacher: KDModel, method: Method,
                   arch: str | None = None) -> Stage:
        """The method's initialization phase as an ordinary stage (own progress, logs, checkpoints).

        Its learning rate is constant (no milestones), as in RepDistiller's ``helper/pretrain.py``.
        """
        trainer = optim_settings(self.cfg)
        optim = replace(trainer.constant, lr=trainer.lr if method.init_lr is None else method.init_lr)
        return Stage(name, "init", arch or model_label(self.cfg.student), f"{self.cfg.method.name}_init",
                     InitTask(student, teacher, method), self.epochs(method.init_epochs), optim,
                     needs_index=method.needs.sample_index, in_table=False)

    def distill_stages(self, name: str, role: str, student: KDModel, teacher: KDModel,
                       student_arch: str | None = None, teacher_arch: str | None = None) -> Iterator[Stage]:
        """The configured method distilling ``teacher`` into ``student``: its init stage (if any), then
        the main stage. ``teacher`` may be any module giving logits (and features, if the method needs them)."""
        method = self.method(student, teacher, student_arch, teacher_arch)
        if method.init_epochs > 0:
            prefix = f"{self.cfg.method.name}_init"
            yield self.init_stage(prefix if name == "distilled" else f"{prefix}_{name}", student, teacher, method,
                                  arch=student_arch)
        yield self.distill_stage(name, role, student, teacher, method, arch=student_arch)

    def eval_stage(self, name: str, role: str, arch: str, model: torch.nn.Module) -> Stage:
        """A row that trains nothing (an ensemble of trained models): it is only evaluated."""
        return Stage(name, role, arch, "none", SupervisedTask(model), 0, optim_settings(self.cfg))

    def example_input(self, n: int = 2) -> torch.Tensor:
        """``n`` real test inputs: what models are traced with (export) and sized by."""
        return torch.stack([self.data.test[i][0] for i in range(n)])

