"""The optimizer and learning-rate schedule of a stage, from its :class:`OptimSettings`.

``optimizer=sgd`` (momentum, the CIFAR recipes) or ``optimizer=adamw`` (the transformer recipes: BERT,
DistilBERT, TinyBERT); ``no_decay_norm_bias`` leaves biases and normalisation weights (every 1-D parameter)
out of weight decay, as the BERT recipes do (their ``no_decay = ["bias", "LayerNorm.weight"]``).

``scheduler=multistep`` steps once per epoch at ``milestones`` (RepDistiller's schedule, unchanged);
``cosine`` and ``linear`` step once per optimizer step, after a linear warm-up over ``warmup`` (a fraction
of the stage's steps) from 0, decaying to ``min_lr`` (cosine) or to 0 (linear: transformers'
``get_linear_schedule_with_warmup``). A warm-up can precede ``multistep`` too (then it steps per step).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from kdrun.engine.stage import OptimSettings


def param_groups(params: list[nn.Parameter], o: OptimSettings) -> list[dict]:
    if not o.no_decay_norm_bias or o.weight_decay == 0:
        return [{"params": params, "weight_decay": o.weight_decay}]
    decay = [p for p in params if p.ndim > 1]
    rest = [p for p in params if p.ndim <= 1]
    return [g for g in ({"params": decay, "weight_decay": o.weight_decay}, {"params": rest, "weight_decay": 0.0})
            if g["params"]]


def make_optimizer(params: list[nn.Parameter], o: OptimSettings) -> torch.optim.Optimizer:
    groups = param_groups(params, o)
    if o.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps)
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)


def per_step(o: OptimSettings) -> bool:
    """Whether the schedule advances every optimizer step (else once per epoch)."""
    return o.scheduler != "multistep" or o.warmup > 0


def lr_factor(o: OptimSettings, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    """Step (0-based) -> the factor on the base lr."""
    warm = int(o.warmup * total_steps)

    def factor(step: int) -> float:
        if step < warm:  # transformers' warm-up: 0 at the first step, as get_linear_schedule_with_warmup
            return step / warm
        if o.scheduler == "multistep":
            epoch = step // max(steps_per_epoch, 1)  # 0-based: epoch e+1 runs at decay^(milestones <= e)
            return o.lr_decay ** sum(m <= epoch for m in o.milestones)
        progress = (step - warm) / max(total_steps - warm, 1)
        if o.scheduler == "linear":
            return max(0.0, 1.0 - progress)
        floor = o.min_lr / o.lr if o.lr else 0.0
        return floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, o: OptimSettings, epochs: int,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    if not per_step(o):
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(o.milestones), gamma=o.lr_decay)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(o, epochs * steps_per_epoch, steps_per_epoch))
