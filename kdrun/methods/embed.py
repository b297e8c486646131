"""The linear embeddings of CC and CRD (RepDistiller's ``LinearEmbed`` and ``Embed``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LinearEmbed(nn.Module):
    """Flatten, project to ``dim_out``; with ``normalize`` the result is L2-normalized (CRD)."""

    def __init__(self, dim_in: int, dim_out: int = 128, normalize: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x.flatten(1))
        return F.normalize(out, p=2, dim=1) if self.normalize else out
