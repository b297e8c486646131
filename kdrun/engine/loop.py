"""One training epoch and one evaluation pass. Knows nothing of methods or schemes."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from kdrun.engine.finite import FiniteWatch
from kdrun.engine.meters import EpochMeter
from kdrun.engine.progress import ProgressReporter
from kdrun.engine.task import Batch, Progress, Task

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPES[amp])


def to_batch(raw: tuple | dict, device: torch.device) -> Batch:
    """(x, y) or (x, y, index) from a loader, or a dict of Batch fields (paired loaders) -> Batch on ``device``."""
    if isinstance(raw, dict):
        return Batch(**{k: t.to(device, non_blocking=True) for k, t in raw.items()})
    tensors = [t.to(device, non_blocking=True) for t in raw]
    return Batch(*tensors)


def train_one_epoch(
    task: Task | nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
    device: torch.device, amp: str | None, epoch: int, epochs: int, reporter: ProgressReporter,
    after_step: Callable[[], None] | None = None, grad_clip: float | None = None,
) -> dict[str, float]:
    """One epoch of optimizer steps; ``after_step`` runs after each (a momentum teacher's EMA update, a
    per-step lr schedule); ``grad_clip`` caps the gradients' total norm."""
    task.train()
    meter = EpochMeter()
    watch = FiniteWatch()  # a diverged loss stops the stage (kdrun/engine/finite.py)
    steps = len(loader)
    for step, raw in enumerate(loader):
        batch = to_batch(raw, device)
        with autocast(device, amp):
            out = task(batch, Progress(epoch, epochs, step, steps))
        optimizer.zero_grad(set_to_none=True)
        if scaler.is_enabled():  # fp16: scaled loss, steps skipped on overflow
            scaler.scale(out.loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                _clip(optimizer, grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            out.loss.backward()
            if grad_clip:
                _clip(optimizer, grad_clip)
            optimizer.step()
        if after_step is not None:
            after_step()
        values = {"loss": out.loss, **out.terms}
        meter.update(len(batch.y), out.logits, batch.y, values)
        watch.record(step, values)
        if (step + 1) % reporter.refresh_every == 0 or step + 1 == steps:
            watch.check(epoch)
            # the one sync per refresh interval, shared by the progress display
            reporter.batch(step + 1, float(out.loss.detach()), _accuracy(out.logits.detach(), batch.y))
    meter.reduce_across_ranks()  # data-parallel: the epoch's numbers over every rank's shard
    return meter.compute()


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 (%) of a batch; on next-token targets (B, L), over the positions not ignored (-100)."""
    hits = logits.argmax(1) == y
    return 100.0 * float(hits[y != -100].float().mean() if y.dim() > 1 else hits.float().mean())


def _clip(optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_norm)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device, amp: str | None = None,
             across_ranks: bool = True) -> dict[str, float]:
    """Top-1 (%) (on next-token data: token accuracy, and ``perplexity``) and mean cross-entropy of ``model`` on ``loader`` (with ``across_ranks``, summed over the
    data-parallel ranks' shards; without, what this process saw: evaluation by one rank alone)."""
    was_training = model.training
    model.eval()
    meter = EpochMeter()
    for raw in loader:
        batch = to_batch(raw, device)
        with autocast(device, amp):
            logits = model(batch.x)
        meter.update(len(batch.y), logits, batch.y, {"loss": F.cross_entropy(logits.float(), batch.y)})
    model.train(was_training)
    if across_ranks:
        meter.reduce_across_ranks()  # data-parallel: each rank evaluated its own shard of the test set
    out = meter.compute()
    if meter.tokens and "loss" in out:  # next-token data: the token-mean cross-entropy is the log-perplexity
        out["perplexity"] = math.exp(min(out["loss"], 700.0))
    return out
