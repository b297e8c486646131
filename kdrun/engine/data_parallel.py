"""The DistributedDataParallel wrapper of a stage's task, and buffer averaging before evaluation."""

from __future__ import annotations

import inspect

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kdrun.distributed.state import all_reduce_sum_, broadcast_, world_size
from kdrun.engine.task import Batch, Progress, StepOutput, Task

# torch >= 2.14 renamed broadcast_buffers (the new name still syncs once at construction: harmless,
# every rank builds identical buffers)
_NO_FORWARD_BUFFER_SYNC = ({"forward_sync_buffers": False}
                           if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                           else {"broadcast_buffers": False})


def data_parallel(task: Task) -> nn.Module:
    """What the training loop calls: the task itself in one process, a DDP wrapper otherwise.

    The teacher is held outside the task's module tree (``Frozen``), so DDP never sees it: no
    gradient sync, no parameter broadcast. ``static_graph``: a task's modules may hold parameters
    its stage never uses (a method's init-only connector; a method's modules when
    ``distill.beta=0``); DDP finds them in the first step and skips them afterwards, without
    ``find_unused_parameters``' graph walk every step. Buffers are not broadcast before each
    forward: method buffers such as CRD's memory banks are kept identical by the methods
    themselves (kdrun.distributed.gather) -- a per-step broadcast of rank 0's copy would drop the
    other ranks' updates -- and batch-norm statistics are averaged before each evaluation
    (:func:`average_buffers`).
    """
    if world_size() == 1:
        return task
    return _DataParallelTask(task)


class _TensorsOut(nn.Module):
    """The task with its StepOutput as a tuple: DDP finds the output tensors it must hook (for
    ``static_graph``'s first step) in tuples, lists and dicts, but not in kdrun's dataclass."""

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task

    def forward(self, batch: Batch, progress: Progress) -> tuple:
        out = self.task(batch, progress)
        return out.loss, out.logits, out.terms


class _DataParallelTask(nn.Module):
    def __init__(self, task: Task) -> None:
        super().__init__()
        self.ddp = DistributedDataParallel(_TensorsOut(task), device_ids=None, static_graph=True,
                                           **_NO_FORWARD_BUFFER_SYNC)

    def forward(self, batch: Batch, progress: Progress) -> StepOutput:
        loss, logits, terms = self.ddp(batch, progress)
        return StepOutput(loss, logits, terms)


@torch.no_grad()
def average_buffers(model: nn.Module) -> None:
    """Make every rank's buffers equal before evaluation: floating-point ones (batch-norm running
    statistics, quantization observers' ranges) averaged, the others (fake-quantization zero points,
    counters) taken from rank 0.

    Each rank updated them from its own shard of every batch; the average is the closest to the
    single-process statistics, and it makes every rank evaluate (and rank 0 save) the same model.
    """
    if world_size() == 1:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            all_reduce_sum_(buf).div_(world_size())
        else:
            broadcast_(buf)
