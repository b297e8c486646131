"""A Stage is one training run inside a pipeline: a task, how long, and with which optimizer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kdrun.engine.task import Task


@dataclass(frozen=True)
class OptimSettings:
    """SGD with momentum and a multi-step schedule (the reference CIFAR recipe)."""

    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = (150, 180, 210)
    lr_decay: float = 0.1
    nesterov: bool = False


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
