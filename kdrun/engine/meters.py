"""Running sums kept on the device: one host sync per epoch, not per step."""

from __future__ import annotations

import torch


class EpochMeter:
    """Sums losses, loss terms and correct predictions over an epoch without ``.item()`` per step."""

    def __init__(self) -> None:
        self.count = 0
        self.sums: dict[str, torch.Tensor] = {}
        self.correct: torch.Tensor | None = None

    def update(self, n: int, logits: torch.Tensor, targets: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
        self.count += n
        correct = (logits.detach().argmax(1) == targets).sum()
        self.correct = correct if self.correct is None else self.correct + correct
        for k, v in values.items():
            v = v.detach().float() * n
            self.sums[k] = v if k not in self.sums else self.sums[k] + v

    def reduce_across_ranks(self) -> None:
        """Sum counts and sums over data-parallel ranks (no-op in one process), so that
        ``compute`` describes the whole epoch rather than this rank's shard."""
        from kdrun.distributed.state import all_gather_object, all_reduce_sum_, collective_device, world_size

        if world_size() == 1:
            return
        # a rank that saw no batch has no keys yet: agree on them first (once per epoch)
        keys = sorted(set().union(*all_gather_object(sorted(self.sums))))
        device = self.correct.device if self.correct is not None else collective_device()
        zero = torch.zeros((), dtype=torch.float64, device=device)
        packed = torch.stack([zero + self.count, zero + (self.correct if self.correct is not None else 0),
                              *(zero + self.sums.get(k, 0.0) for k in keys)])
        all_reduce_sum_(packed)
        self.count, self.correct = int(packed[0].item()), packed[1]
        self.sums = {k: packed[2 + i] for i, k in enumerate(keys)}

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            return {}
        out = {k: (v / self.count).item() for k, v in self.sums.items()}
        out["top1"] = 100.0 * self.correct.item() / self.count
        return out
