"""Who this process is in a data-parallel run, and the collectives kdrun uses outside DDP itself.

Everything here works in a single process (rank 0 of 1) without an initialized process group,
so callers never branch on whether training is distributed.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger("kdrun")

# Rank 0 may wait on another sweep job's teacher (the StageCache file lock) for hours while the
# other ranks wait for its decision. Those waits go over a separate gloo group with a long
# timeout, so the training group keeps the default timeout that catches real hangs.
CONTROL_TIMEOUT = datetime.timedelta(days=7)
_control_group: Any = None


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if initialized() else 1


def is_main() -> bool:
    """Rank 0: the only process that writes logs, checkpoints, results and tables."""
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", rank())) if initialized() else 0


def default_backend(device_type: str) -> str:
    return "nccl" if device_type == "cuda" else "gloo"


def init_process_group(backend: str, init_method: str = "env://", rank: int | None = None,
                       world_size: int | None = None) -> None:
    """Join the process group, then create the control group (a collective: every rank calls it)."""
    global _control_group
    kwargs = {} if rank is None else {"rank": rank, "world_size": world_size}
    dist.init_process_group(backend=backend, init_method=init_method, **kwargs)
    _control_group = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)


def destroy_process_group() -> None:
    global _control_group
    if initialized():
        dist.destroy_process_group()
    _control_group = None


def local_device(device: torch.device) -> torch.device:
    """This rank's device: ``cuda`` becomes ``cuda:<local rank>`` (modulo the visible devices, so it
    also works when Slurm already restricted each task to its own GPU)."""
    if device.type != "cuda" or not initialized():
        return device
    index = local_rank() % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def collective_device() -> torch.device:
    """Where tensors for the training group's collectives live (NCCL needs them on the GPU)."""
    if initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (over the long-timeout control group)."""
    if not initialized():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0, group=_control_group)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    if not initialized():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj, group=_control_group)
    return out


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (on the training group and device)."""
    if initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` in place with rank ``src``'s (on the training group and device)."""
    if initialized():
        dist.broadcast(tensor, src=src)
    return tensor


def barrier() -> None:
    if initialized():
        dist.barrier(group=_control_group)


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (a dataset download, a cache file), then the others."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def quiet_other_ranks() -> None:
    """Ranks other than 0 write no log file and print only warnings: one log per run."""
    if is_main():
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.WARNING)
    log.setLevel(logging.WARNING)
