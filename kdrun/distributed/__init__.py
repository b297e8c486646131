"""Data-parallel training (torch.distributed): who this process is, how processes start, what they share.

* ``state``: rank, world size and the few collectives the rest of kdrun needs; every helper is
  a no-op in a single process, so the engine calls them unconditionally.
* ``launch``: start the processes -- under ``torchrun`` (or a Slurm job from the submitit
  launcher) they exist already; ``device.nproc=N`` spawns N on this machine.
* ``data``: per-rank batch size and evaluation shards.
* ``wrap``: the DistributedDataParallel wrapper around a stage's task.
* ``gather``: helpers for methods with state updated from batches (CRD's memory banks).
"""

from kdrun.distributed.gather import all_gather_rows, all_reduce_mean
from kdrun.distributed.state import is_main, rank, world_size

__all__ = ["all_gather_rows", "all_reduce_mean", "is_main", "rank", "world_size"]
