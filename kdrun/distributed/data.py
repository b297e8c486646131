"""How data is split between ranks.

``trainer.batch_size`` is the *global* batch: each of N ranks trains on batch_size / N samples
per step, and DDP averages their gradients. Together with make_loader's sharding (rank r takes
every N-th index of the epoch's shuffled order), step k of a data-parallel run sees the same
samples as step k of a single-process run, so the same recipe gives the same model (up to the
differences listed in docs/scaling.md) on any number of GPUs.
"""

from __future__ import annotations

from torch.utils.data import Dataset, Subset

from kdrun.data.base import TensorData
from kdrun.errors import KdrunError


def per_rank_batch_size(batch_size: int, world_size: int) -> int:
    if batch_size % world_size:
        raise KdrunError(f"trainer.batch_size={batch_size} is the global batch and must be divisible by the "
                         f"number of data-parallel processes ({world_size}); e.g. trainer.batch_size="
                         f"{batch_size // world_size * world_size or world_size}")
    return batch_size // world_size


def eval_shard(dataset: Dataset, batch_size: int, max_batches: int | None, rank: int, world_size: int) -> Dataset:
    """This rank's part of the test set: every ``world_size``-th sample, no padding.

    Unlike training shards (padded so every rank runs the same number of steps), evaluation
    must count every test sample exactly once: the ranks' correct/total counts are summed
    afterwards. ``max_batches`` caps the samples *before* sharding, so a capped evaluation sees
    the same samples as in one process.
    """
    n = len(dataset)
    if max_batches is not None:
        n = min(n, max_batches * batch_size)
    if world_size == 1 and n == len(dataset):
        return dataset
    index = list(range(rank, n, world_size))
    if isinstance(dataset, TensorData):  # keep the fast indexing path (and the dataset's preprocessing)
        return dataset.subset(index)
    return Subset(dataset, index)
