"""The DistributedDataParallel wrapper of a stage's task, and buffer averaging before evaluation."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kdrun.distributed.state import all_reduce_sum_, world_size
from kdrun.schemes.task import Task


def data_parallel(task: Task) -> nn.Module:
    """What the training loop calls: the task itself in one process, a DDP wrapper otherwise.

    The teacher is held outside the task's module tree (``Frozen``), so DDP never sees it: no
    gradient sync, no parameter broadcast. ``find_unused_parameters`` because a task's modules
    may hold parameters its current stage does not use (a method's init-only connector, an
    adapter used by another stage). ``broadcast_buffers=False``: method buffers such as CRD's
    memory banks are kept identical by the methods themselves (kdrun.distributed.gather) -- a
    per-step broadcast of rank 0's copy would drop the other ranks' updates -- and batch-norm
    statistics are averaged before each evaluation (:func:`average_buffers`).
    """
    if world_size() == 1:
        return task
    return DistributedDataParallel(task, device_ids=None, broadcast_buffers=False, find_unused_parameters=True)


@torch.no_grad()
def average_buffers(model: nn.Module) -> None:
    """Average floating-point buffers (batch-norm running statistics) over ranks.

    Each rank updated them from its own shard of every batch; the average is the closest to the
    single-process statistics, and it makes every rank evaluate (and rank 0 save) the same model.
    """
    if world_size() == 1:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            all_reduce_sum_(buf).div_(world_size())
