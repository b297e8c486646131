"""Helpers for methods whose state is updated from batches, e.g. CRD's memory banks.

Under data parallelism each rank sees only its shard of every batch. A method that writes
per-sample state (a memory bank row per dataset index) or estimates a constant from a batch
(CRD's normalizer Z) must apply the *global* batch on every rank, or the ranks' copies drift
apart and none of them equals the single-process state. The contract for such a method:

    index, v_s, v_t = all_gather_rows(batch.index, v_s, v_t)   # every rank: the whole global batch
    self.memory.update(index, v_s, v_t)                         # identical update on every rank
    z = all_reduce_mean(first_batch_estimate)                   # identical constant on every rank

Both are the identity in a single process. The gathered rows carry no gradient (state updates
happen outside autograd). The engine never broadcasts method buffers between ranks (DDP runs
with ``broadcast_buffers=False``), so keeping them identical is exactly this contract.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from kdrun.distributed.state import initialized, world_size


def all_gather_rows(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each tensor's rows from every rank, concatenated in rank order (detached).

    The tensors of one call must have the same number of rows on a rank; that number may differ
    between ranks (a last, shorter batch).
    """
    if not initialized() or world_size() == 1:
        return tuple(t.detach() for t in tensors)
    rows = tensors[0].shape[0]
    if any(t.shape[0] != rows for t in tensors):
        raise ValueError("all_gather_rows: every tensor needs the same number of rows")
    counts = torch.tensor([rows], device=tensors[0].device)
    all_counts = [torch.zeros_like(counts) for _ in range(world_size())]
    dist.all_gather(all_counts, counts)
    sizes = [int(c.item()) for c in all_counts]
    return tuple(_gather_padded(t.detach(), sizes) for t in tensors)


def _gather_padded(t: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """all_gather needs equal shapes: pad every rank's rows to the largest count, then trim."""
    longest = max(sizes)
    padded = t.new_zeros((longest, *t.shape[1:]))
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over ranks (a new tensor; the input is unchanged)."""
    if not initialized() or world_size() == 1:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world_size()
