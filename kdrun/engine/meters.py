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

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            return {}
        out = {k: (v / self.count).item() for k, v in self.sums.items()}
        out["top1"] = 100.0 * self.correct.item() / self.count
        return out
