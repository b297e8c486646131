"""Data-parallel training (torch.distributed): who this process is, how processes start, what they share.

* ``state``: rank, world size and the few collectives the rest of kdrun needs; every helper is
  a no-op in a single process, so the engine calls them unconditionally.
* ``data``: per-rank batch size and evaluation shards.
* ``gather``: helpers for methods with state updated from batches (CRD's memory banks).
* ``packing``: how many parallel jobs share a GPU, and which one each takes.

Starting the processes (``torchrun``, ``device.nproc=N``) is a run's business: kdrun/runs/launch.py. The
DistributedDataParallel wrapper around a stage's task is kdrun/engine/data_parallel.py.
"""

from kdrun.distributed.gather import all_gather_rows, all_reduce_mean
from kdrun.distributed.state import is_main, rank, world_size

__all__ = ["all_gather_rows", "all_reduce_mean", "is_main", "rank", "world_size"]
