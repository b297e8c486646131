"""Teacher correction: fine-tune the teacher on the distillation data before distilling from it.

Sreenivas, Muralidharan et al. (NVIDIA), "LLM
Pruning and Distillation in Practice: The Minitron Approach", arXiv 2408.11796, 2024 (sec. "teacher
correction"): when the teacher was trained on data that is not available (or differs from the data
one distils on), a light fine-tuning of the teacher on the distillation data before distilling
corrects the distribution shift its soft targets would otherwise pass on.

Here it is the optional ``teacher_corrected`` stage of the offline scheme (options checked there): a copy of the (trained or
loaded) teacher fine-tuned on the run's labeled training set for ``scheme.correction.epochs`` at a
constant ``scheme.correction.lr``. Transfer sets carry no labels in kdrun, so they cannot correct a
teacher. The table keeps both rows (``teacher`` before, ``teacher_corrected`` after) and the
distilled student learns from the corrected one. Its cache key holds the original teacher's weights
digest and the correction settings, so a corrected teacher is a model of its own in the cache (and
its recorded outputs, keyed by its own weights, never mix with the original's).
"""

from __future__ import annotations

import copy
import hashlib
import json

from omegaconf import OmegaConf

from kdrun.tasks.build import dataset_identity, optim_settings
from kdrun.models.foreign_nodes import model_label
from kdrun.engine.stage import Stage
from kdrun.engine.task import SupervisedTask
from kdrun.engine.teacher_outputs import weights_digest
from kdrun.models.base import KDModel
from kdrun.schemes.context import SchemeContext

STAGE = "teacher_corrected"


def correction_key(ctx: SchemeContext, teacher: KDModel, epochs: int, lr: float) -> str:
    """The corrected teacher's cache key: which teacher it started from, and how it was fine-tuned."""
    dataset = dataset_identity(ctx.cfg, ("root", "download"))
    trainer = {k: v for k, v in OmegaConf.to_container(ctx.cfg.trainer, resolve=True).items()
               if k not in ("num_workers", "epochs", "lr", "milestones")}
    blob = json.dumps({"corrects": weights_digest(teacher), "epochs": epochs, "lr": lr, "dataset": dataset,
                       "trainer": trainer, "seed": ctx.cfg.seed, "amp": ctx.cfg.device.amp}, sort_keys=True)
    return f"{model_label(ctx.cfg.teacher)}-corrected-{ctx.data.info.name}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


def correction_stage(ctx: SchemeContext, teacher: KDModel, epochs: int, lr: float) -> Stage:
    """A copy of ``teacher`` (trained or loaded by now) fine-tuned on the labeled set with CE."""
    corrected = copy.deepcopy(teacher)
    epochs = ctx.epochs(epochs)
    optim = optim_settings(ctx.cfg, lr).constant  # a short fine-tuning: constant lr
    stage = Stage(STAGE, "teacher (corrected)", model_label(ctx.cfg.teacher), "ce", SupervisedTask(corrected), epochs, optim,
                  cache_key=correction_key(ctx, teacher, epochs, lr))
    stage.info.update(corrects="teacher", correction_epochs=epochs, correction_lr=lr)
    return stage
