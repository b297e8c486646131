"""Mixed inputs for distillation: function matching.

Beyer, Zhai, Royer, Markeeva, Anil and Kolesnikov, "Knowledge distillation: A good teacher is
patient and consistent", CVPR 2022. Distillation is treated as matching the teacher's *function*:
teacher and student see the very same input (consistency), and that input is pushed off the data
manifold with mixup (Zhang et al., ICLR 2018) or CutMix (Yun et al., ICCV 2019) so the student
learns the teacher's outputs on many more points than the training set holds.

Only inputs are mixed, never labels: the distillation terms need no labels (the teacher provides
the targets on the mixed input, as in the paper, whose loss is the KL term alone). Cross-entropy,
when its weight is > 0, stays on the clean labeled batch (see DistillTask), so it keeps its usual
meaning instead of becoming a mixed-label loss the teacher's outputs would contradict.

Each batch is mixed with a shuffled copy of itself under one coefficient ``lam`` drawn from
Beta(alpha, alpha) and folded to ``lam >= 0.5`` (as MixMatch does, Berthelot et al., NeurIPS 2019):
the mixed distribution is unchanged (pairs are random) but each mixed sample is dominated by its
own original, so labels and dataset indices a method reads still describe its main content.
Randomness comes from torch's global CPU generator, which the engine reseeds every epoch, so a
resumed run mixes exactly like an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: the config checks read MIX_KINDS without loading it
MIX_KINDS = ("mixup", "cutmix")


def draw_lambda(alpha: float) -> float:
    """lam ~ Beta(alpha, alpha), folded to [0.5, 1]."""
    import torch

    concentration = torch.tensor(float(alpha))
    lam = float(torch.distributions.Beta(concentration, concentration).sample())
    return max(lam, 1.0 - lam)


def mixup(x: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """lam * x + (1 - lam) * x[perm]: a convex combination of each input with a partner."""
    return lam * x + (1.0 - lam) * x[perm]


def cutmix(x: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """Paste a box from the partner ``x[perm]`` covering a fraction ``1 - lam`` of the input.

    Works for any number of spatial dims (1-D signals: a segment; images: a rectangle of the same
    aspect ratio as the input). The box lies fully inside the input, placed uniformly (the CutMix
    paper samples its centre and clips it at the border, which makes boxes smaller on average).
    """
    import torch

    spatial = x.shape[2:]
    if not spatial:  # vector inputs have no spatial layout to cut: nothing to paste
        return x
    side = (1.0 - lam) ** (1.0 / len(spatial))
    box = []
    for size in spatial:
        cut = min(size, round(size * side))
        start = int(torch.randint(0, size - cut + 1, (1,)))
        box.append(slice(start, start + cut))
    out = x.clone()
    region = (slice(None), slice(None), *box)
    out[region] = x[perm][region]
    return out


class BatchMix:
    """Mixes a batch with a shuffled copy of itself: ``mixup`` or ``cutmix`` with Beta(alpha, alpha)."""

    def __init__(self, kind: str, alpha: float = 1.0) -> None:
        if kind not in MIX_KINDS:
            raise ValueError(f"unknown mix {kind!r}; valid: {', '.join(MIX_KINDS)}")
        if not alpha > 0 or math.isinf(alpha):
            raise ValueError(f"mix alpha must be a positive number, got {alpha}")
        self.kind, self.alpha = kind, float(alpha)
        self._mix = mixup if kind == "mixup" else cutmix

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        lam = draw_lambda(self.alpha)
        perm = torch.randperm(len(x)).to(x.device)  # drawn on the CPU: same stream on every device
        return self._mix(x, lam, perm)

    def __repr__(self) -> str:
        return f"BatchMix({self.kind!r}, alpha={self.alpha})"
