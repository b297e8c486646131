"""Running sums kept on the device: one host sync per epoch, not per step."""

from __future__ import annotations

import torch


class EpochMeter:
    """Sums losses, loss terms and correct predictions over an epoch without ``.item()`` per step.

    A step only records its (detached) values; they are summed in a few batched ops when the epoch's
    numbers are asked for, which keeps the per-step cost at a handful of tiny ops (it shows on small
    models, where a step takes well under a millisecond).
    """

    def __init__(self) -> None:
        self.count = 0
        self.tokens = False  # next-token targets seen (counts are tokens)
        self.sums: dict[str, torch.Tensor] = {}
        self.correct: torch.Tensor | None = None
        self._pending: list[tuple[int, torch.Tensor, dict[str, torch.Tensor]]] = []

    def update(self, n: int, logits: torch.Tensor, targets: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
        """``n`` samples; next-token targets (B, L) count their non-ignored positions instead (token accuracy,
        token-weighted losses: their mean cross-entropy is the log-perplexity)."""
        if targets.dim() > 1:
            valid = targets != -100
            self.tokens = True
            n = int(valid.sum())  # one host sync per step, on next-token data only
            correct = ((logits.detach().argmax(1) == targets) & valid).sum()
        else:
            correct = (logits.detach().argmax(1) == targets).sum()
        self._pending.append((n, correct, {k: v.detach() for k, v in values.items()}))

    def _fold(self) -> None:
        """Add the recorded steps into ``count``, ``correct`` and ``sums``."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self.count += sum(n for n, _, _ in pending)
        correct = torch.stack([c for _, c, _ in pending]).sum()
        self.correct = correct if self.correct is None else self.correct + correct
        keys = dict.fromkeys(k for _, _, values in pending for k in values)
        for k in keys:
            steps = [(n, values[k]) for n, _, values in pending if k in values]
            stacked = torch.stack([v for _, v in steps]).float()
            weights = torch.tensor([float(n) for n, _ in steps], device=stacked.device)
            total = (stacked * weights).sum()
            self.sums[k] = total if k not in self.sums else self.sums[k] + total

    def reduce_across_ranks(self) -> None:
        """Sum counts and sums over data-parallel ranks (no-op in one process), so that
        ``compute`` describes the whole epoch rather than this rank's shard."""
        from kdrun.distributed.state import all_gather_object, all_reduce_sum_, collective_device, world_size

        self._fold()
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
        self._fold()
        if self.count == 0:
            return {}
        out = {k: (v / self.count).item() for k, v in self.sums.items()}
        out["top1"] = 100.0 * self.correct.item() / self.count
        return out
