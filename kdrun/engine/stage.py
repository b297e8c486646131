"""A Stage is one training run inside a pipeline: a task, how long, and with which optimizer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kdrun.engine.task import Task


@dataclass(frozen=True)
class OptimSettings:
    """Optimizer and schedule (kdrun/engine/optim.py); the defaults are the reference CIFAR recipe: SGD with
    momentum and a multi-step schedule."""

    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = (150, 180, 210)
    lr_decay: float = 0.1
    nesterov: bool = False
    optimizer: str = "sgd"  # sgd | adamw
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    no_decay_norm_bias: bool = False  # biases and norm weights (1-D parameters) without weight decay
    scheduler: str = "multistep"  # multistep | cosine | linear
    warmup: float = 0.0  # linear warm-up over this fraction of the stage's steps
    min_lr: float = 0.0  # cosine's floor
    grad_clip: float | None = None  # max gradient norm (DistilBERT: 5.0; BERT fine-tuning: 1.0)

    @property
    def constant(self) -> "OptimSettings":
        """The same optimizer at a constant lr (init and fine-tuning phases)."""
        from dataclasses import replace

        return replace(self, milestones=(), scheduler="multistep", warmup=0.0)


@dataclass
class Stage:
    """One row of the comparison (or an init phase feeding one).

    ``name`` is unique within the run and names the checkpoint and log folders; ``role`` is the
    row label (teacher, baseline, distilled, ...). ``cache_key`` marks a stage whose result does
    not depend on the run's distillation settings (plain cross-entropy training), so it can be
    shared between runs and sweep jobs. ``uses_transfer`` asks for batches that carry a transfer
    batch beside the labeled one (``Batch.transfer_x``). ``epochs=0`` marks a stage that trains
    nothing and is only evaluated (an ensemble of trained models, a model to calibrate).

    ``deploy(env, measure_settings) -> Deployment`` (kdrun/engine/finish.py), when set, turns the
    trained model into the one the row reports (e.g. converts it to int8); it runs after training,
    must be deterministic, and its result is cached next to the stage's checkpoints.

    ``mixed_precision=False`` keeps a stage in float32 even when ``device.amp`` asks for bf16/fp16
    (fake-quantized training: the observers and fake-quant ops expect float32 activations).
    """

    name: str
    role: str
    arch: str
    method: str
    task: Task
    epochs: int
    optim: OptimSettings
    cache_key: str | None = None
    needs_index: bool = False
    uses_transfer: bool = False
    in_table: bool = True
    info: dict = field(default_factory=dict)
    deploy: Callable[..., Any] | None = None
    mixed_precision: bool = True
